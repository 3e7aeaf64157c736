-- Snowplow's default channel grouping (GA4's rules) of a landing page view, an expression over three
-- inputs (placeholders lm, ls, rm): its mkt_medium and mkt_source lower-cased and trimmed, and its
-- refr_medium, each '' when missing.
-- referer-parser's refr_medium stands in for GA4's source categories.  The marketing fields are the
-- campaign-attribution enrichment's mkt_*, as in Snowplow's web model (which does not read utm_*
-- parameters off the page URL): without that enrichment a campaign's landing is Direct or its
-- referrer's channel.
multiIf(
  {{lm}} = '' AND {{ls}} = '' AND {{rm}} IN ('', 'internal'), 'Direct',
  {{ls}} = '(direct)' AND {{lm}} IN ('(not set)', '(none)'), 'Direct',
  {{lm}} LIKE '%cross-network%', 'Cross-network',
  match({{lm}}, '^(.*cp.*|ppc|retargeting|paid.*)$'),
    multiIf({{rm}} = 'search', 'Paid Search', {{rm}} = 'social', 'Paid Social', {{rm}} = 'video', 'Paid Video',
            'Paid Other'),
  {{lm}} IN ('display', 'banner', 'expandable', 'interstitial', 'cpm'), 'Display',
  {{rm}} = 'social' OR {{lm}} IN ('social', 'social-network', 'social-media', 'sm', 'social network', 'social media'),
    'Organic Social',
  {{rm}} = 'video' OR match({{lm}}, '^(.*video.*)$'), 'Organic Video',
  {{rm}} = 'search' OR {{lm}} = 'organic', 'Organic Search',
  {{rm}} = 'email' OR {{ls}} IN ('email', 'e-mail', 'e_mail', 'e mail')
    OR {{lm}} IN ('email', 'e-mail', 'e_mail', 'e mail'), 'Email',
  {{lm}} IN ('referral', 'app', 'link') OR ({{lm}} = '' AND {{rm}} = 'unknown'), 'Referral',
  {{lm}} = 'affiliate', 'Affiliates',
  {{lm}} = 'audio', 'Audio',
  {{ls}} = 'sms' OR {{lm}} = 'sms', 'SMS',
  {{lm}} LIKE '%push' OR match({{lm}}, 'mobile|notification') OR {{ls}} = 'firebase', 'Mobile Push Notifications',
  'Unassigned')
