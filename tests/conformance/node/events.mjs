// Tracks one event of every kind the official @snowplow/node-tracker can build, with
// no collector: a custom emitter keeps the payloads, which go to stdout as one
// JSON array of tracker-protocol events (what a POST body's payload_data holds).
//
//   node events.mjs
//
// tests/unit/test_tracker_schemas_offline.py sends them through the enrichment stage
// with the network unreachable: every schema they name must be shipped.

import {
  newTracker,
  buildAdClick,
  buildAdConversion,
  buildAdImpression,
  buildAddToCart,
  buildConsentGranted,
  buildConsentWithdrawn,
  buildEcommerceTransaction,
  buildEcommerceTransactionItem,
  buildFormFocusOrChange,
  buildFormSubmission,
  buildLinkClick,
  buildPagePing,
  buildPageView,
  buildRemoveFromCart,
  buildScreenView,
  buildSiteSearch,
  buildSocialInteraction,
  buildStructEvent,
  buildSelfDescribingEvent,
} from '@snowplow/node-tracker';

const payloads = [];
const emitter = {
  input: async (payload) => { payloads.push(payload); },
  flush: async () => {},
  setCollectorUrl: () => {},
  setAnonymousTracking: () => {},
  setBufferSize: () => {},
};
const encodeBase64 = process.argv[2] !== '--no-base64';
const tracker = newTracker({ namespace: 'offline-node', appId: 'snowmelt-offline', encodeBase64 },
  { customEmitter: () => emitter });

const product = { sku: 'W-1', name: 'Widget', category: 'tools', unitPrice: 9.5, currency: 'EUR' };
const events = [
  buildPageView({ pageUrl: 'https://shop.example.org/p/1', pageTitle: 'Widget', referrer: 'https://example.com/' }),
  buildPagePing({ pageUrl: 'https://shop.example.org/p/1', minXOffset: 0, maxXOffset: 10, minYOffset: 0, maxYOffset: 300 }),
  buildStructEvent({ category: 'shop', action: 'add', label: 'W-1', property: 'size', value: 2 }),
  buildScreenView({ name: 'Home', id: 'home-1' }),
  buildLinkClick({ targetUrl: 'https://example.org/out', elementId: 'a1', elementClasses: ['x', 'y'],
    elementTarget: '_blank', elementContent: 'Out' }),
  buildAdImpression({ impressionId: 'i1', costModel: 'cpm', cost: 0.5, targetUrl: 'https://ads.example.org/',
    bannerId: 'b1', zoneId: 'z1', advertiserId: 'a1', campaignId: 'c1' }),
  buildAdClick({ targetUrl: 'https://ads.example.org/', clickId: 'k1', costModel: 'cpc', cost: 0.1, bannerId: 'b1' }),
  buildAdConversion({ conversionId: 'v1', costModel: 'cpa', cost: 3, category: 'signup', action: 'done',
    property: 'p', initialValue: 10, advertiserId: 'a1', campaignId: 'c1' }),
  buildAddToCart({ ...product, quantity: 2 }),
  buildRemoveFromCart({ ...product, quantity: 1 }),
  buildFormFocusOrChange({ schema: 'change_form', formId: 'f1', elementId: 'email', nodeName: 'INPUT',
    type: 'email', elementClasses: ['c'], value: 'a@example.org' }),
  buildFormFocusOrChange({ schema: 'focus_form', formId: 'f1', elementId: 'email', nodeName: 'INPUT',
    type: 'email', elementClasses: ['c'], value: null }),
  buildFormSubmission({ formId: 'f1', formClasses: ['signup'],
    elements: [{ name: 'email', value: 'a@example.org', nodeName: 'INPUT', type: 'email' }] }),
  buildSiteSearch({ terms: ['snow', 'melt'], filters: { in_stock: true, colour: 'white' }, totalResults: 12,
    pageResults: 10 }),
  buildSocialInteraction({ action: 'like', network: 'mastodon', target: 'post-1' }),
  buildConsentGranted({ id: 'doc-1', version: '2', name: 'Privacy policy', description: 'What we keep',
    expiry: '2030-01-01T00:00:00Z' }).event,
  buildConsentWithdrawn({ all: false, id: 'doc-1', version: '2', name: 'Privacy policy' }).event,
  buildEcommerceTransaction({ orderId: 'o1', total: 19, affiliation: 'web', tax: 1, shipping: 2, city: 'Bern',
    state: 'BE', country: 'CH', currency: 'CHF' }),
  buildEcommerceTransactionItem({ orderId: 'o1', sku: 'W-1', name: 'Widget', category: 'tools', price: 9.5,
    quantity: 2, currency: 'CHF' }),
  buildSelfDescribingEvent({ event: { schema: 'iglu:com.snowplowanalytics.snowplow/timing/jsonschema/1-0-0',
    data: { category: 'load', variable: 'map', timing: 125, label: 'first' } } }),
];
// the consent events carry their documents as entities
const consentDocs = [buildConsentGranted({ id: 'doc-1', version: '2' }).context,
  buildConsentWithdrawn({ all: false, id: 'doc-1', version: '2' }).context];
events.forEach((event, i) => {
  const context = i === 15 ? consentDocs[0] : i === 16 ? consentDocs[1] : undefined;
  tracker.track(event, context);
});
await tracker.flush();
process.stdout.write(JSON.stringify(payloads.map((p) => Object.fromEntries(
  Object.entries(p).map(([k, v]) => [k, String(v)])))) + '\n');
