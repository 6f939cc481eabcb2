// Filling partner sync URL templates. The registry checks each template when
// it is stored (partners/validate.ts checkSyncTemplate: http(s), fixed host,
// known macros only); here a template is split once into literal parts and
// macros, then filled per request by concatenation with every macro value
// URL-encoded: a consent string or uid can never add a parameter, a path or
// a host.
//
//   https://sync.partner.example/match?dmp=segd&uid=${UID}&gdpr=${GDPR}&gdpr_consent=${GDPR_CONSENT}
import { checkSyncTemplate, SYNC_MACROS } from '../partners/validate.js';

export type Macro = (typeof SYNC_MACROS)[number];
export type MacroValues = Record<Macro, string>;

export class TemplateError extends Error {}

export interface SyncTemplate {
  fill(values: MacroValues): string;
}

/** Literal parts and macros alternate: parts[0] macro[0] parts[1] … parts[n]. Throws TemplateError on a template the registry would refuse. */
export function compileTemplate(url: string): SyncTemplate {
  const why = checkSyncTemplate(url);
  if (why !== null) throw new TemplateError(`sync URL template ${why}`);
  const parts: string[] = [];
  const macros: Macro[] = [];
  let i = 0;
  for (let at = url.indexOf('${'); at !== -1; at = url.indexOf('${', i)) {
    const close = url.indexOf('}', at);
    parts.push(url.slice(i, at));
    macros.push(url.slice(at + 2, close) as Macro);
    i = close + 1;
  }
  parts.push(url.slice(i));
  return {
    fill(values) {
      let s = parts[0]!;
      for (let k = 0; k < macros.length; k++) s += encodeURIComponent(wellFormed(values[macros[k]!])) + parts[k + 1]!;
      return s;
    },
  };
}

/** Lone surrogates (possible from a JSON body) would make encodeURIComponent throw: they become U+FFFD. */
const LONE_SURROGATE = /[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/g;
function wellFormed(v: string): string {
  return v.replace(LONE_SURROGATE, '\ufffd');
}

/** Compiled templates of the registry's partners, rebuilt when the registry reloads (its version moves). */
export class TemplateCache {
  private version = -1;
  private byPartner = new Map<string, SyncTemplate | null>();

  get(partnerId: string, url: string, registryVersion: number): SyncTemplate | null {
    if (registryVersion !== this.version) {
      this.byPartner.clear();
      this.version = registryVersion;
    }
    let t = this.byPartner.get(partnerId);
    if (t === undefined) {
      try {
        t = compileTemplate(url);
      } catch {
        t = null; // stored before the check existed: never used
      }
      this.byPartner.set(partnerId, t);
    }
    return t;
  }
}
