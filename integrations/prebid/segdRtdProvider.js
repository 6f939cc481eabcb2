/**
 * This module adds segd to the Real-Time Data module (modules/rtdModule).
 * The {@link module:modules/realTimeData} module is required.
 * It asks the publisher's segd server for this browser's audience segments
 * (the segd cookie names the browser) and writes them as OpenRTB `user.data`
 * into the auction's first-party data, and as ad-server targeting.
 * @module modules/segdRtdProvider
 * @requires module:modules/realTimeData
 */
import { submodule } from '../src/hook.js';
import { getStorageManager } from '../src/storageManager.js';
import { MODULE_TYPE_RTD } from '../src/activities/modules.js';
import { qualifiedFetcherFactory } from '../src/ajax.js';
import { isPlainObject, logError, logWarn, mergeDeep } from '../src/utils.js';

const MODULE_NAME = 'realTimeData';
const SUBMODULE_NAME = 'segd';
export const STORAGE_KEY = 'segd_rtd';
const DEFAULT_CACHE_TTL = 300;
/** How long a request not awaited by the auction (background refresh, timeout 0) may take. */
const BACKGROUND_TIMEOUT = 3000;

export const storage = getStorageManager({ moduleType: MODULE_TYPE_RTD, moduleName: SUBMODULE_NAME });

/** The last answer used in an auction, for getTargetingData. */
let current = null;
/** A refresh under way (one at a time). */
let inFlight = null;

const PARTNER_ID = /^[a-z0-9_-]{1,40}$/;
/** segd takes at most this many bidder partners in one lookup. */
const MAX_BIDDERS = 50;

/** `bidders` as a map bidder code → segd partner id: an array names both alike. Invalid ids are left out. */
function bidderMap(bidders) {
  const pairs = Array.isArray(bidders)
    ? bidders.map((b) => [b, b])
    : isPlainObject(bidders)
      ? Object.entries(bidders)
      : [];
  const out = {};
  const partners = new Set();
  for (const [code, partner] of pairs) {
    if (typeof code !== 'string' || typeof partner !== 'string' || !PARTNER_ID.test(partner)) {
      logWarn(`segd RTD: bidders: ${JSON.stringify(partner)} is not a segd partner id (a-z 0-9 _ -), ignored`);
      continue;
    }
    if (!partners.has(partner) && partners.size >= MAX_BIDDERS) {
      logWarn(`segd RTD: bidders: more than ${MAX_BIDDERS} partners, ${partner} ignored`);
      continue;
    }
    partners.add(partner);
    out[code] = partner;
  }
  return out;
}

/** Checked params, or null (the module stays off). */
export function readParams(config) {
  const p = config?.params ?? {};
  if (typeof p.endpoint !== 'string' || !/^https?:\/\//.test(p.endpoint)) {
    logError('segd RTD: params.endpoint must be the segd base URL (https://…)');
    return null;
  }
  if (typeof p.partnerKey !== 'string' || !PARTNER_ID.test(p.partnerKey)) {
    logError("segd RTD: params.partnerKey must be the publisher's partner id in segd");
    return null;
  }
  const ttl = p.cacheTtl === undefined ? DEFAULT_CACHE_TTL : Number(p.cacheTtl);
  return {
    endpoint: p.endpoint.replace(/\/+$/, ''),
    partnerKey: p.partnerKey,
    bidders: bidderMap(p.bidders),
    segtax: isPlainObject(p.segtax) ? p.segtax : {},
    cacheTtl: Number.isFinite(ttl) && ttl > 0 ? ttl : 0,
    gvlid: Number.isInteger(p.gvlid) ? p.gvlid : null,
  };
}

/**
 * Whether the consent signals allow a personalised-ads lookup at all. segd
 * decides again on its side (the same signals are forwarded); this check
 * only spares a call, and any storage, that would be refused.
 */
export function consentAllows(userConsent, gvlid) {
  if (userConsent?.coppa) return false;
  const gdpr = userConsent?.gdpr;
  if (gdpr?.gdprApplies) {
    const v = gdpr.vendorData;
    if (!gdpr.consentString || !v) return false;
    const purposes = v.purpose?.consents ?? {};
    if (!purposes[1] || !purposes[4]) return false;
    if (gvlid !== null && !v.vendor?.consents?.[gvlid]) return false;
  }
  const usp = userConsent?.usp;
  if (typeof usp === 'string' && /^1.[Yy]/.test(usp)) return false;
  const sections = userConsent?.gpp?.parsedSections ?? {};
  for (const s of Object.values(sections)) {
    for (const section of Array.isArray(s) ? s : [s]) {
      if (!isPlainObject(section)) continue;
      for (const f of ['SaleOptOut', 'SharingOptOut', 'TargetedAdvertisingOptOut']) if (section[f] === 1) return false;
    }
  }
  return true;
}

/** The lookup URL with every consent signal Prebid has (segd reads them as its sync routes do). */
export function lookupUrl(params, userConsent) {
  const q = [['pub', params.partnerKey]];
  const partners = [...new Set(Object.values(params.bidders))];
  if (partners.length) q.push(['bidders', partners.join(',')]);
  const gdpr = userConsent?.gdpr;
  if (gdpr && typeof gdpr.gdprApplies === 'boolean') {
    q.push(['gdpr', gdpr.gdprApplies ? '1' : '0']);
    if (gdpr.consentString) q.push(['gdpr_consent', gdpr.consentString]);
  }
  if (typeof userConsent?.usp === 'string') q.push(['us_privacy', userConsent.usp]);
  const gpp = userConsent?.gpp;
  if (gpp?.gppString) {
    q.push(['gpp', gpp.gppString]);
    // A CMP says "no section applies" with [-1]: segd takes only section ids.
    const sids = Array.isArray(gpp.applicableSections)
      ? gpp.applicableSections.filter((x) => Number.isInteger(x) && x >= 0)
      : [];
    if (sids.length) q.push(['gpp_sid', sids.join(',')]);
  }
  if (userConsent?.coppa) q.push(['coppa', '1']);
  return `${params.endpoint}/v1/rtd?${q.map(([k, v]) => `${k}=${encodeURIComponent(v)}`).join('&')}`;
}

/** Data objects with their segtax mapped (`segtax: {600: 601}`; a mapping to 0 or null drops the object). */
function mapSegtax(data, segtax) {
  const out = [];
  for (const d of Array.isArray(data) ? data : []) {
    const from = d?.ext?.segtax;
    if (!(String(from) in segtax)) {
      out.push(d);
      continue;
    }
    const to = Number(segtax[from]);
    if (Number.isInteger(to) && to > 0) out.push({ ...d, ext: { ...d.ext, segtax: to } });
  }
  return out;
}

function cacheKey(params) {
  return `${params.partnerKey}|${Object.values(params.bidders).sort().join(',')}`;
}

function readCache(params) {
  if (!params.cacheTtl) return null;
  try {
    const v = JSON.parse(storage.getDataFromLocalStorage(STORAGE_KEY) ?? 'null');
    if (!isPlainObject(v) || v.k !== cacheKey(params) || typeof v.t !== 'number' || !isPlainObject(v.a)) return null;
    return Date.now() - v.t < params.cacheTtl * 1000 ? v : null;
  } catch (e) {
    return null;
  }
}

function writeCache(params, answer) {
  if (params.cacheTtl)
    storage.setDataInLocalStorage(STORAGE_KEY, JSON.stringify({ t: Date.now(), k: cacheKey(params), a: answer }));
}

/**
 * Asks segd (one request at a time: a second caller shares it). Resolves
 * with the answer or null, never rejects; an answer is cached as it arrives,
 * so one that comes too late for an auction still serves the next.
 */
function lookup(params, userConsent, abortMs) {
  if (inFlight) return inFlight;
  const pm = new Promise((resolve) => {
    qualifiedFetcherFactory(
      MODULE_TYPE_RTD,
      SUBMODULE_NAME,
      abortMs,
    )(lookupUrl(params, userConsent), {
      method: 'GET',
      credentials: 'include',
    })
      .then((r) => (r.status === 200 ? r.json() : null))
      .then((a) => {
        const answer = isPlainObject(a) ? a : null;
        if (answer) writeCache(params, answer);
        resolve(answer);
      })
      .catch((e) => {
        logWarn('segd RTD: lookup failed', e);
        resolve(null);
      });
  });
  inFlight = pm;
  pm.then(() => {
    inFlight = null;
  });
  return pm;
}

/** Writes an answer into the auction's first-party data. */
export function applyAnswer(reqBidsConfigObj, answer, params) {
  const fragments = reqBidsConfigObj.ortb2Fragments;
  const data = mapSegtax(answer.data, params.segtax);
  if (data.length) mergeDeep(fragments.global, { user: { data } });
  const byPartner = isPlainObject(answer.bidders) ? answer.bidders : {};
  const perBidder = {};
  for (const [code, partner] of Object.entries(params.bidders)) {
    const extra = mapSegtax(byPartner[partner], params.segtax);
    if (extra.length) perBidder[code] = { user: { data: extra } };
  }
  if (Object.keys(perBidder).length) mergeDeep(fragments.bidder, perBidder);
}

function init(config) {
  const params = readParams(config);
  if (params === null) return false;
  config.__segd = params;
  return true;
}

/**
 * Calls back exactly once and within `timeout` (the auction's delay for
 * this module; 0 when the auction does not wait for it): at once with a
 * cached answer or without consent, else when segd answers, fails or the
 * time is up — whichever comes first. Data that arrives after the callback
 * is not written into the auction (it has started); it is cached.
 */
function getBidRequestData(reqBidsConfigObj, callback, config, userConsent, timeout) {
  let called = false;
  let timer;
  const done = () => {
    clearTimeout(timer);
    if (!called) {
      called = true;
      callback();
    }
  };
  try {
    const params = config.__segd ?? readParams(config);
    current = null;
    if (params === null || !consentAllows(userConsent, params.gvlid)) return done();
    const use = (a) => {
      if (!a || called) return;
      current = a;
      applyAnswer(reqBidsConfigObj, a, params);
    };
    const wait = timeout > 0 ? timeout : 0;
    // With a cache, a lookup may outlive the auction's wait: its answer serves the next auction.
    const abortMs = params.cacheTtl ? Math.max(wait, BACKGROUND_TIMEOUT) : wait;
    const cached = readCache(params);
    if (cached) {
      use(cached.a);
      done();
      // Stale-while-revalidate: past half its lifetime, the entry is refreshed for the next auction.
      if (Date.now() - cached.t > (params.cacheTtl * 1000) / 2) lookup(params, userConsent, abortMs);
      return;
    }
    if (wait === 0) {
      // The auction does not wait for this module: only the cache (for the next auction) can gain.
      done();
      if (params.cacheTtl) lookup(params, userConsent, abortMs);
      return;
    }
    timer = setTimeout(done, wait);
    lookup(params, userConsent, abortMs).then((a) => {
      use(a);
      done();
    });
  } catch (e) {
    logError('segd RTD: getBidRequestData failed', e);
    done();
  }
}

function getTargetingData(adUnitCodes, config, userConsent) {
  const params = config.__segd ?? readParams(config);
  if (!current || params === null || !consentAllows(userConsent, params.gvlid)) return {};
  const kv = isPlainObject(current.targeting) ? current.targeting : {};
  if (!Object.keys(kv).length) return {};
  return Object.fromEntries(adUnitCodes.map((code) => [code, { ...kv }]));
}

function onDataDeletionRequest() {
  current = null;
  storage.removeDataFromLocalStorage(STORAGE_KEY);
}

/** @type {RtdSubmodule} */
export const segdSubmodule = {
  name: SUBMODULE_NAME,
  init,
  getBidRequestData,
  getTargetingData,
  onDataDeletionRequest,
};

submodule(MODULE_NAME, segdSubmodule);
