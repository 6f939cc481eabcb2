// Who is calling a lookup path, and so which segments it may see. Checked
// before anything about the user is read: a 401 or 403 says the same whether
// or not the user exists.
import type { Registry } from '../partners/registry.js';
import { ANONYMOUS, type Licence, type Licences } from '../lookup/licences.js';

export class Callers {
  constructor(
    private readonly registry: Registry,
    private readonly licences: Licences,
    /** SEGD_LOOKUP_AUTH=required: no anonymous callers. */
    private readonly required: boolean,
  ) {}

  /**
   * The caller's licence from the raw Authorization header, or null (401).
   * A key that is sent must be valid even where anonymous lookups are
   * allowed: a typo must not silently widen what a partner sees.
   */
  licence(authorization: string): Licence | null {
    if (authorization === '') return this.required ? null : ANONYMOUS;
    const p = this.registry.partnerForKey(authorization);
    if (p === null) return null;
    return this.licences.of(p.id) ?? null;
  }
}
