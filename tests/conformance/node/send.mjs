// Sends events to a Snowplow collector with the official @snowplow/node-tracker.
//
//   node send.mjs <collector-url> <get|post> <count>
//                 [--buffer-size N] [--max-post-bytes N] [--nuid UUID] [--keep-cookies]
//
// Tracks <count> events cycling page view (one context), structured event (no
// context) and self-describing event (two contexts), with a subject (user id,
// screen resolution, ip, useragent, language, timezone), then flushes until every
// event has been answered.
//
// stdout: one JSON report, what the test compares the collector's raw topic with:
//   {tracker, namespace, appId, platform, method, subject: {param: value},
//    events: [{eid, e, params, ue, contexts}], requests: [{status, eids}], failures: [...]}
// (params/ue/contexts are what this script asked the tracker to send, in
// tracker-protocol names).
//
// --buffer-size N      emitter bufferSize (events stored before a flush; default 10 on Node).
// --max-post-bytes N   emitter maxPostBytes: a POST batch is split into requests of at most N bytes.
// --nuid UUID          tracker.setNetworkUserId(UUID): sent as the `nuid` parameter.
// --keep-cookies       a fetch wrapper that keeps the collector's cookies and sends them
//                      back, as a browser would (Node's fetch keeps none).
//
// Exit status: 0 only when every request got a 2xx answer and every event was
// sent; 1 otherwise; 2 on bad arguments or when the deadline passes.

import { readFileSync } from 'node:fs';
import {
  newTracker,
  buildPageView,
  buildStructEvent,
  buildSelfDescribingEvent,
} from '@snowplow/node-tracker';

const DEADLINE_MS = 60000;

function usage(message) {
  process.stderr.write(`${message}\nusage: node send.mjs <collector-url> <get|post> <count> ` +
    '[--buffer-size N] [--max-post-bytes N] [--nuid UUID] [--keep-cookies]\n');
  process.exit(2);
}

const args = process.argv.slice(2);
const positional = [];
const options = { bufferSize: undefined, maxPostBytes: undefined, nuid: undefined, keepCookies: false };
for (let i = 0; i < args.length; i++) {
  const arg = args[i];
  if (arg === '--buffer-size') options.bufferSize = Number(args[++i]);
  else if (arg === '--max-post-bytes') options.maxPostBytes = Number(args[++i]);
  else if (arg === '--nuid') options.nuid = args[++i];
  else if (arg === '--keep-cookies') options.keepCookies = true;
  else if (arg.startsWith('--')) usage(`unknown option ${arg}`);
  else positional.push(arg);
}
if (positional.length !== 3) usage('expected 3 arguments');
const [collectorUrl, method, countArg] = positional;
const count = Number(countArg);
if (!['get', 'post'].includes(method)) usage(`method must be get or post, not ${method}`);
if (!Number.isInteger(count) || count < 1) usage(`count must be a positive integer, not ${countArg}`);
for (const name of ['bufferSize', 'maxPostBytes']) {
  const value = options[name];
  if (value !== undefined && !(Number.isInteger(value) && value > 0)) usage(`${name} must be a positive integer`);
}
const url = new URL(collectorUrl);

const trackerVersion = JSON.parse(readFileSync(
  new URL('./node_modules/@snowplow/node-tracker/package.json', import.meta.url), 'utf8')).version;

const NAMESPACE = 'conformance-node';
const APP_ID = 'snowmelt-conformance';
const SUBJECT = {
  uid: 'node-user-ü@example.com',
  res: '2560x1440',
  ip: '198.51.100.23',
  ua: 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5; conformance) AppleWebKit/605.1.15 Safari/605.1.15',
  lang: 'fr-FR',
  tz: 'America/New_York',
};
const PAGE_CONTEXT = {
  schema: 'iglu:com.acme/page_context/jsonschema/1-0-2',
  data: { section: 'shoes & boots/ünïcode ✓', index: 7, flag: null },
};
const USER_CONTEXT = {
  schema: 'iglu:com.acme/user_context/jsonschema/1-0-0',
  data: { tier: 'silver', tags: ['b', 'é', '&=?#'], score: 1.25 },
};

// --- fetch that keeps cookies (only with --keep-cookies) -------------------------------
const jar = new Map();
async function fetchKeepingCookies(request, init) {
  let req = request;
  if (jar.size) {
    const headers = new Headers(request.headers);
    headers.set('Cookie', [...jar].map(([k, v]) => `${k}=${v}`).join('; '));
    req = new Request(request, { headers });
  }
  const response = await fetch(req, init);
  const setCookies = typeof response.headers.getSetCookie === 'function'
    ? response.headers.getSetCookie() : [response.headers.get('set-cookie')].filter(Boolean);
  for (const line of setCookies) {
    const [pair] = line.split(';');
    const eq = pair.indexOf('=');
    if (eq > 0) jar.set(pair.slice(0, eq).trim(), pair.slice(eq + 1).trim());
  }
  return response;
}

// --- the tracker -----------------------------------------------------------------------
const requests = [];
const failures = [];
const answered = new Set();

const emitter = {
  endpoint: url.hostname,
  protocol: url.protocol.replace(':', ''),
  port: url.port ? Number(url.port) : undefined,
  eventMethod: method,
  connectionTimeout: 10000,
  onRequestSuccess: (batch, response) => {
    const eids = batch.map((p) => p.eid);
    requests.push({ status: response.status, eids });
    eids.forEach((eid) => answered.add(eid));
  },
  onRequestFailure: (failure, response) => {
    failures.push({ status: response ? response.status : null, message: failure.message,
      willRetry: failure.willRetry, eids: failure.events.map((p) => p.eid) });
    if (!failure.willRetry) failure.events.forEach((p) => answered.add(p.eid));
  },
};
if (options.bufferSize !== undefined) emitter.bufferSize = options.bufferSize;
if (options.maxPostBytes !== undefined) emitter.maxPostBytes = options.maxPostBytes;
if (options.keepCookies) emitter.customFetch = fetchKeepingCookies;

const tracker = newTracker({ namespace: NAMESPACE, appId: APP_ID, encodeBase64: true }, emitter);
tracker.setUserId(SUBJECT.uid);
tracker.setScreenResolution('2560', '1440');
tracker.setIpAddress(SUBJECT.ip);
tracker.setUseragent(SUBJECT.ua);
tracker.setLang(SUBJECT.lang);
tracker.setTimezone(SUBJECT.tz);
if (options.nuid) tracker.setNetworkUserId(options.nuid);

const events = [];
for (let i = 0; i < count; i++) {
  let expected;
  let payload;
  if (i % 3 === 0) {
    const params = {
      url: `https://app.example.org/catalogue/${i}?q=crème brûlée&n=1#reviews`,
      page: `Catalogue ${i} — “quotes” & <tags>`,
      refr: 'https://duckduckgo.com/?q=snow%20melt&ia=web',
    };
    payload = tracker.track(buildPageView({ pageUrl: params.url, pageTitle: params.page, referrer: params.refr }),
      [PAGE_CONTEXT]);
    expected = { e: 'pv', params, ue: null, contexts: [PAGE_CONTEXT] };
  } else if (i % 3 === 1) {
    const params = { se_ca: 'checkout', se_ac: 'apply-coupon', se_la: `code-${i} a&b=c`, se_pr: 'tier=gold/é',
      se_va: String(i * 10 + 0.25) };
    payload = tracker.track(buildStructEvent({ category: params.se_ca, action: params.se_ac, label: params.se_la,
      property: params.se_pr, value: i * 10 + 0.25 }));
    expected = { e: 'se', params, ue: null, contexts: [] };
  } else {
    const ue = { schema: 'iglu:com.acme/link_click/jsonschema/1-0-1',
      data: { target: `https://example.net/${i}?a=1&b=ü`, label: 'Go ✓', position: i, nested: { ok: false } } };
    payload = tracker.track(buildSelfDescribingEvent({ event: ue }), [USER_CONTEXT, PAGE_CONTEXT]);
    expected = { e: 'ue', params: {}, ue, contexts: [USER_CONTEXT, PAGE_CONTEXT] };
  }
  if (!payload || !payload.eid) {
    process.stderr.write(`event ${i} was not tracked\n`);
    process.exit(1);
  }
  events.push({ eid: payload.eid, ...expected });
}

// Flush until every event has been answered (a flush already running returns at once).
const deadline = Date.now() + DEADLINE_MS;
while (answered.size < events.length && Date.now() < deadline) {
  await tracker.flush();
  await new Promise((resolve) => setTimeout(resolve, 10));
}

const report = {
  tracker: `node-${trackerVersion}`,
  namespace: NAMESPACE,
  appId: APP_ID,
  platform: 'srv',
  method,
  subject: { ...SUBJECT, ...(options.nuid ? { nuid: options.nuid } : {}) },
  events,
  requests,
  failures,
  cookies: Object.fromEntries(jar),
};
process.stdout.write(JSON.stringify(report) + '\n');

const sent = new Set(requests.flatMap((r) => r.eids));
const allSent = events.every((e) => sent.has(e.eid));
const all2xx = requests.every((r) => r.status >= 200 && r.status < 300);
if (answered.size < events.length) {
  process.stderr.write(`deadline: ${events.length - answered.size} events unanswered after ${DEADLINE_MS} ms\n`);
  process.exit(2);
}
process.exit(failures.length === 0 && allSent && all2xx ? 0 : 1);
