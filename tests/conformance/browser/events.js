// The official browser tracker and its plugins, tracking one event of each kind they offer,
// in a page (bundled by esbuild into bundle.js; see tests/conformance/test_browser_tracker_offline.py).
//
// The page's query string names the collector: page.html?collector=http://127.0.0.1:PORT
// When every event is sent, the page tracks one last structured event (category "done",
// action the number of events tracked before it) and writes "DONE <n>" into #status.

import { newTracker, trackPageView, trackStructEvent, trackSelfDescribingEvent, flushBuffer,
  enableActivityTracking } from '@snowplow/browser-tracker';
import { LinkClickTrackingPlugin, trackLinkClick } from '@snowplow/browser-plugin-link-click-tracking';
import { FormTrackingPlugin, enableFormTracking } from '@snowplow/browser-plugin-form-tracking';
import { ErrorTrackingPlugin, trackError } from '@snowplow/browser-plugin-error-tracking';
import { SiteTrackingPlugin, trackSiteSearch, trackSocialInteraction, trackTiming }
  from '@snowplow/browser-plugin-site-tracking';
import { SnowplowEcommercePlugin, trackAddToCart, trackRemoveFromCart, trackProductView, trackProductListView,
  trackProductListClick, trackPromotionView, trackPromotionClick, trackCheckoutStep, trackTransaction, trackRefund,
  trackTransactionError, setPageType, setEcommerceUser } from '@snowplow/browser-plugin-snowplow-ecommerce';
import { EnhancedEcommercePlugin, addEnhancedEcommerceProductContext, addEnhancedEcommerceImpressionContext,
  addEnhancedEcommercePromoContext, addEnhancedEcommerceActionContext, trackEnhancedEcommerceAction }
  from '@snowplow/browser-plugin-enhanced-ecommerce';
import { SnowplowMediaPlugin, startMediaTracking, endMediaTracking, trackMediaReady, trackMediaPlay,
  trackMediaPause, trackMediaEnd, trackMediaSeekStart, trackMediaSeekEnd, trackMediaPlaybackRateChange,
  trackMediaVolumeChange, trackMediaFullscreenChange, trackMediaPictureInPictureChange, trackMediaAdBreakStart,
  trackMediaAdBreakEnd, trackMediaAdStart, trackMediaAdSkip, trackMediaAdFirstQuartile, trackMediaAdMidpoint,
  trackMediaAdThirdQuartile, trackMediaAdComplete, trackMediaAdClick, trackMediaAdPause, trackMediaAdResume,
  trackMediaBufferStart, trackMediaBufferEnd, trackMediaQualityChange, trackMediaError, trackMediaSelfDescribingEvent,
  updateMediaTracking } from '@snowplow/browser-plugin-media';
import { ScreenTrackingPlugin, trackScreenView, trackListItemView, trackScrollChanged }
  from '@snowplow/browser-plugin-screen-tracking';
import { SnowplowElementTrackingPlugin, startElementTracking } from '@snowplow/browser-plugin-element-tracking';
import { ButtonClickTrackingPlugin, enableButtonClickTracking, trackButtonClick }
  from '@snowplow/browser-plugin-button-click-tracking';
import { GaCookiesPlugin } from '@snowplow/browser-plugin-ga-cookies';
import { ClientHintsPlugin } from '@snowplow/browser-plugin-client-hints';
import { PrivacySandboxPlugin } from '@snowplow/browser-plugin-privacy-sandbox';
import { PerformanceTimingPlugin } from '@snowplow/browser-plugin-performance-timing';
import { PerformanceNavigationTimingPlugin } from '@snowplow/browser-plugin-performance-navigation-timing';
import { TimezonePlugin } from '@snowplow/browser-plugin-timezone';

const status = (text) => { document.getElementById('status').textContent = text; };
window.addEventListener('error', (e) => status('ERROR ' + e.message));

async function main() {
  const collector = new URLSearchParams(location.search).get('collector');
  document.cookie = '_ga=GA1.1.1234567890.1764288000; path=/';
  document.cookie = '_ga_ABC123=GS1.1.1764288000.1.0.1764288000.0.0.0; path=/';
  let tracked = 0;
  newTracker('sp', collector, {
    appId: 'snowmelt-browser', platform: 'web', eventMethod: 'post', bufferSize: 1,
    contexts: { webPage: true, session: true, browser: true },
    plugins: [LinkClickTrackingPlugin(), FormTrackingPlugin(), ErrorTrackingPlugin(), SiteTrackingPlugin(),
      SnowplowEcommercePlugin(), EnhancedEcommercePlugin(), SnowplowMediaPlugin(), ScreenTrackingPlugin(),
      SnowplowElementTrackingPlugin(), ButtonClickTrackingPlugin(), GaCookiesPlugin({ ga4: true, ua: true }),
      ClientHintsPlugin(true), PrivacySandboxPlugin(), PerformanceTimingPlugin(),
      PerformanceNavigationTimingPlugin(), TimezonePlugin(),
      { afterTrack: () => { tracked += 1; } }],
  });
  enableActivityTracking({ minimumVisitLength: 1, heartbeatDelay: 1 });
  trackPageView();
  trackStructEvent({ category: 'shop', action: 'view', label: 'home', value: 1 });
  trackSelfDescribingEvent({ event: { schema: 'iglu:com.snowplowanalytics.snowplow/timing/jsonschema/1-0-0',
    data: { category: 'load', variable: 'map', timing: 125 } } });

  trackLinkClick({ targetUrl: 'https://example.org/out', elementId: 'a1', elementClasses: ['x'],
    elementTarget: '_blank', elementContent: 'Out' });
  trackSiteSearch({ terms: ['snow', 'melt'], filters: { in_stock: true }, totalResults: 12, pageResults: 10 });
  trackSocialInteraction({ action: 'like', network: 'mastodon', target: 'post-1' });
  trackTiming({ category: 'load', variable: 'map', timing: 125, label: 'first' });
  trackError({ message: 'x is undefined', filename: 'app.js', lineno: 12, colno: 4, error: new Error('x is undefined') });

  // forms: focus, change and submit, driven through the DOM as a user would
  enableFormTracking();
  const input = document.getElementById('email');
  input.dispatchEvent(new Event('focus'));
  input.value = 'a@example.org';
  input.dispatchEvent(new Event('change', { bubbles: true }));
  document.getElementById('signup').dispatchEvent(new Event('submit', { bubbles: true, cancelable: true }));

  enableButtonClickTracking();
  document.getElementById('buy').click();
  trackButtonClick({ label: 'Buy now', id: 'buy2', classes: ['btn'], name: 'buy2' });

  // Snowplow ecommerce
  const product = { id: 'W-1', name: 'Widget', category: 'tools', price: 9.5, currency: 'EUR', quantity: 2 };
  setPageType({ type: 'product', language: 'de', locale: 'de-CH' });
  setEcommerceUser({ id: 'u1', is_guest: false, email: 'a@example.org' });
  trackProductView(product);
  trackProductListView({ name: 'featured', products: [product] });
  trackProductListClick({ name: 'featured', product });
  trackPromotionView({ id: 'promo-1', name: 'Winter', product_ids: ['W-1'], position: 1, type: 'banner' });
  trackPromotionClick({ id: 'promo-1', name: 'Winter' });
  trackAddToCart({ products: [product], total_value: 19, currency: 'EUR', cart_id: 'c1' });
  trackRemoveFromCart({ products: [product], total_value: 0, currency: 'EUR', cart_id: 'c1' });
  trackCheckoutStep({ step: 1, shipping_postcode: '3000', payment_method: 'card' });
  trackTransaction({ transaction_id: 't1', revenue: 19, currency: 'EUR', payment_method: 'card', total_quantity: 2,
    products: [product] });
  trackRefund({ transaction_id: 't1', refund_amount: 9.5, currency: 'EUR', refund_reason: 'broken', products: [product] });
  trackTransactionError({ transaction: { transaction_id: 't2', revenue: 19, currency: 'EUR', payment_method: 'card',
    total_quantity: 2 }, error_code: 'E1', error_shortcode: 'declined', error_description: 'Card declined',
    error_type: 'hard', resolution: 'rejection' });

  // enhanced ecommerce (GA-style)
  addEnhancedEcommerceProductContext({ id: 'W-1', name: 'Widget', list: 'featured', brand: 'acme', category: 'tools',
    variant: 'red', price: '9.5', quantity: 2, position: 1, currency: 'EUR' });
  addEnhancedEcommerceImpressionContext({ id: 'W-2', name: 'Gadget', list: 'featured', price: '5', position: 2 });
  addEnhancedEcommercePromoContext({ id: 'promo-1', name: 'Winter', creative: 'banner', position: 'top' });
  addEnhancedEcommerceActionContext({ id: 't1', affiliation: 'web', revenue: '19', tax: '1', shipping: '2',
    currency: 'EUR' });
  trackEnhancedEcommerceAction({ action: 'purchase' });

  // media (v2 schemas)
  const id = 'media-1';
  startMediaTracking({ id, player: { duration: 300, label: 'Intro', playerType: 'html5', mediaType: 'video' },
    session: { startedAt: new Date() }, pings: false, boundaries: [10, 50] });
  trackMediaReady({ id });
  trackMediaPlay({ id });
  updateMediaTracking({ id, player: { currentTime: 30 } });
  trackMediaPause({ id });
  trackMediaSeekStart({ id });
  trackMediaSeekEnd({ id, player: { currentTime: 150 } });
  trackMediaPlaybackRateChange({ id, newRate: 1.5 });
  trackMediaVolumeChange({ id, newVolume: 50 });
  trackMediaFullscreenChange({ id, fullscreen: true });
  trackMediaPictureInPictureChange({ id, pictureInPicture: true });
  trackMediaBufferStart({ id });
  trackMediaBufferEnd({ id });
  trackMediaQualityChange({ id, previousQuality: '720p', newQuality: '1080p', bitrate: 3000, framesPerSecond: 30,
    automatic: true });
  trackMediaError({ id, errorCode: '500', errorName: 'net', errorDescription: 'gone' });
  trackMediaAdBreakStart({ id, adBreak: { breakId: 'b1', name: 'pre', breakType: 'linear', podSize: 1 } });
  trackMediaAdStart({ id, ad: { adId: 'ad1', name: 'Ad', creativeId: 'cr1', duration: 15, skippable: true } });
  trackMediaAdFirstQuartile({ id });
  trackMediaAdMidpoint({ id });
  trackMediaAdThirdQuartile({ id });
  trackMediaAdPause({ id });
  trackMediaAdResume({ id });
  trackMediaAdClick({ id });
  trackMediaAdSkip({ id });
  trackMediaAdComplete({ id });
  trackMediaAdBreakEnd({ id });
  trackMediaSelfDescribingEvent({ id, event: { schema: 'iglu:com.snowplowanalytics.snowplow/timing/jsonschema/1-0-0',
    data: { category: 'media', variable: 'start', timing: 10 } } });
  trackMediaEnd({ id });
  endMediaTracking({ id });

  // screen tracking (mobile schemas, from the web)
  trackScreenView({ name: 'Home', type: 'feed', transitionType: 'push' });
  trackListItemView({ index: 1, itemsCount: 10 });
  trackScrollChanged({ yOffset: 100, viewHeight: 800, contentHeight: 3000 });

  // element tracking: the promo element exists, is shown
  startElementTracking({ elements: [{ selector: '#promo', name: 'promo', create: true, expose: true,
    details: [{ dataset: ['id'] }], contents: [{ name: 'title', selector: 'h2' }] }] });

  await new Promise((r) => setTimeout(r, 1500));  // element and activity tracking fire on timers
  const before = tracked;
  trackStructEvent({ category: 'done', action: String(before) });
  for (let i = 0; i < 100; i++) {
    flushBuffer();
    await new Promise((r) => setTimeout(r, 100));
  }
  status('DONE ' + before);
}

main().catch((e) => status('ERROR ' + e));
