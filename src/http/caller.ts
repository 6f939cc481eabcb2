// Who is calling a lookup path, and so which segments it may see. Checked
// before anything about the user is read: a 401 or 403 says the same whether
// or not the user exists.
import type { Registry } from '../partners/registry.js';
import { ADMIN, ANONYMOUS, type Licence, type Licences } from '../lookup/licences.js';
import { BearerKeys } from './auth.js';

export class Callers {
  /** null = no admin keys configured (a failed partner key then costs no second digest). */
  private readonly admin: BearerKeys | null;

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
    const p = this.registry.partnerForKey(authorization);
    if (p === null) return this.admin?.allows(authorization) ? ADMIN : null;
    return this.licences.of(p.id) ?? null;
  }
}
