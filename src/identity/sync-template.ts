// Partner sync URL templates. Validated once (when the registry loads), then
// filled per request by concatenation, with every macro value URL-encoded:
// a consent string or uid can never add a parameter, a path or a host.
//
//   https://sync.partner.example/match?dmp=segd&uid=${UID}&gdpr=${GDPR}&gdpr_consent=${GDPR_CONSENT}
//
// Rules: http(s) only, no credentials, at most MAX_TEMPLATE chars, no
// whitespace or control characters, only the macros below, and none in the
// scheme or host (the host a browser is sent to is always the registered one).
export const MACROS = ['UID', 'GDPR', 'GDPR_CONSENT', 'US_PRIVACY', 'GPP', 'GPP_SID'] as const;
export type Macro = (typeof MACROS)[number];
export type MacroValues = Record<Macro, string>;

export const MAX_TEMPLATE = 2048;

export class TemplateError extends Error {}

export interface SyncTemplate {
  /** The registered host (for logs and checks). */
  readonly host: string;
  fill(values: MacroValues): string;
}

/** Literal parts and macros alternate: parts[0] macro[0] parts[1] … parts[n]. */
export function compileTemplate(url: string): SyncTemplate {
  if (typeof url !== 'string' || url.length === 0) throw new TemplateError('the sync URL template is empty');
  if (url.length > MAX_TEMPLATE) throw new TemplateError(`the sync URL template is over ${MAX_TEMPLATE} characters`);
  if (/[\s\x00-\x1f\x7f]/.test(url)) throw new TemplateError('the sync URL template holds whitespace or control characters');
  const parts: string[] = [];
  const macros: Macro[] = [];
  let i = 0;
  for (;;) {
    const at = url.indexOf('${', i);
    if (at === -1) break;
    const close = url.indexOf('}', at);
    const name = close === -1 ? '' : url.slice(at + 2, close);
    if (!(MACROS as readonly string[]).includes(name)) {
      throw new TemplateError(`unknown macro ${JSON.stringify(url.slice(at, close === -1 ? at + 12 : close + 1))} (known: ${MACROS.map((m) => '${' + m + '}').join(' ')})`);
    }
    parts.push(url.slice(i, at));
    macros.push(name as Macro);
    i = close + 1;
  }
  parts.push(url.slice(i));
  // Two fillings with different values must agree on scheme, host and port.
  const a = tryUrl(join(parts, macros.map(() => 'a')));
  const b = tryUrl(join(parts, macros.map(() => 'b%2F%40')));
  if (!a || !b) throw new TemplateError('the sync URL template is not an absolute URL');
  if (a.protocol !== 'https:' && a.protocol !== 'http:') throw new TemplateError('the sync URL template must be http or https');
  if (a.username || a.password) throw new TemplateError('the sync URL template must not hold credentials');
  if (a.origin !== b.origin || !parts[0]!.toLowerCase().startsWith(a.origin)) throw new TemplateError('macros may not appear in the scheme or host');
  const host = a.host;
  return {
    host,
    fill(values) {
      let s = parts[0]!;
      for (let k = 0; k < macros.length; k++) s += encodeURIComponent(values[macros[k]!]) + parts[k + 1]!;
      return s;
    },
  };
}

function join(parts: string[], values: string[]): string {
  let s = parts[0]!;
  for (let k = 0; k < values.length; k++) s += values[k]! + parts[k + 1]!;
  return s;
}

function tryUrl(s: string): URL | null {
  try {
    return new URL(s);
  } catch {
    return null;
  }
}
