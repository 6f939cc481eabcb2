// Who is calling a lookup path, and so which segments it may see. Checked
// before anything about the user is read: a 401 or 403 says the same whether
// or not the user exists.
import type { Registry } from '../partners/registry.js';
import { ADMIN, ANONYMOUS, type Licence, type Licences } from '../lookup/licences.js';
import { BearerKeys } from './auth.js';

/**
 * Authorization headers remembered with their answer. A few dozen partners
 * send the same few headers all day; past this many distinct ones (a caller
 * trying random keys) the map starts over, so memory stays bounded.
 */
const REMEMBERED = 1024;

export class Callers {
  /** null = no admin keys configured (a failed partner key then costs no second digest). */
  private readonly admin: BearerKeys | null;
  /**
   * Header → licence (or null: refused), for the registry version it was
   * worked out under: the SHA-256 of the key was nearly all of a keyed
   * lookup's caller check (427 → 9.5 ns; the keyed lookup 2665 → 1949 ns,
   * bench:micro). V8 hashes the header with a per-process seed and compares
   * strings only on a hash match, so the lookup's timing tells nothing
   * about a key's prefix.
   */
  private known = new Map<string, Licence | null>();
  private knownVersion = -1;

  constructor(
    private readonly registry: Registry,
    private readonly licences: Licences,
    /** SEGD_LOOKUP_AUTH=required: no anonymous callers. */
    private readonly required: boolean,
    /** SEGD_ADMIN_KEYS: they may look up too, and see every segment and uid. */
    adminKeys: readonly string[] = [],
  ) {
    this.admin = adminKeys.length > 0 ? new BearerKeys(adminKeys) : null;
  }

  /**
   * The caller's licence from the raw Authorization header, or null (401).
   * A key that is sent must be valid even where anonymous lookups are
   * allowed: a typo must not silently widen what a partner sees.
   */
  licence(authorization: string): Licence | null {
    if (authorization === '') return this.required ? null : ANONYMOUS;
    // A changed registry (keys, licences) forgets every answer.
    if (this.knownVersion !== this.registry.version) {
      this.known = new Map();
      this.knownVersion = this.registry.version;
    }
    const seen = this.known.get(authorization);
    if (seen !== undefined) return seen;
    const answer = this.work(authorization);
    if (this.known.size >= REMEMBERED) this.known = new Map();
    this.known.set(authorization, answer);
    return answer;
  }

  private work(authorization: string): Licence | null {
    const p = this.registry.partnerForKey(authorization);
    if (p === null) return this.admin?.allows(authorization) ? ADMIN : null;
    return this.licences.of(p.id) ?? null;
  }
}
