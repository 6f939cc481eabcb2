// Valid TCF v2 strings for tests, encoded by @iabtcf/core itself from a small
// local vendor list (test/fixtures/vendor-list.json): no network.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { GVL, TCModel, TCString } from '@iabtcf/core';
import { GppModel } from '@iabgpp/cmpapi';
import { ROOT } from './server.js';

/** The vendor id segd runs as in tests (SEGD_GVL_VENDOR_ID). */
export const TEST_VENDOR = 4242;
const vendorList = JSON.parse(readFileSync(join(ROOT, 'test/fixtures/vendor-list.json'), 'utf8')) as object;

export function tcfString(opts: { vendors: number[]; purposes: number[] }): string {
  const m = new TCModel(new GVL(vendorList as never));
  m.cmpId = 10;
  m.cmpVersion = 1;
  m.isServiceSpecific = true;
  for (const v of opts.vendors) m.vendorConsents.set(v);
  for (const p of opts.purposes) m.purposeConsents.set(p);
  return TCString.encode(m);
}

/** A GPP string with a US Privacy section (sale opt-out Y/N). */
export function gppUsp(optOutSale: boolean): string {
  const g = new GppModel();
  g.setFieldValue('uspv1', 'Notice', 'Y');
  g.setFieldValue('uspv1', 'OptOutSale', optOutSale ? 'Y' : 'N');
  g.setFieldValue('uspv1', 'LspaCovered', 'N');
  return g.encode();
}

/** A GPP string with the US national section (SaleOptOut 1 = opted out, 2 = did not). */
export function gppUsNat(saleOptOut: boolean): string {
  const g = new GppModel();
  g.setFieldValue('usnat', 'SaleOptOutNotice', 1);
  g.setFieldValue('usnat', 'SaleOptOut', saleOptOut ? 1 : 2);
  return g.encode();
}
