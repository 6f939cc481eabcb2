// A real headless Chromium (Debian's, installed by .ci/setup-system.sh) driven
// by playwright-core, with a fresh profile per launch.
//
// Loopback sites: the publisher, segd and each partner must be different
// *sites* for the flow to be third-party as in production. Sites ignore
// ports, and IP hosts have no registrable domain, so 127.0.0.1, 127.0.0.2,
// 127.0.0.3 and localhost are four sites on one machine.
//
// Secure cookies without TLS: Chromium treats http://localhost as a secure
// context and stores and sends `Secure; SameSite=None` cookies for it over
// plain http (also in third-party requests) — but not for 127.0.0.x, so segd
// runs as `localhost` in these tests.
//
// Third-party cookies: this Chromium's default profile blocks them
// (Preferences profile.cookie_controls_mode); the profile written here sets
// mode 0, "allow third-party cookies", as a user who allows them would.
import { chromium, type BrowserContext } from 'playwright-core';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const CHROMIUM = '/usr/bin/chromium';

export interface Browser {
  ctx: BrowserContext;
  close(): Promise<void>;
}

export async function launchBrowser(): Promise<Browser> {
  const profile = mkdtempSync(join(tmpdir(), 'segd-chromium-'));
  mkdirSync(join(profile, 'Default'));
  writeFileSync(join(profile, 'Default', 'Preferences'), JSON.stringify({ profile: { cookie_controls_mode: 0 } }));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  });
  return {
    ctx,
    async close() {
      await ctx.close();
      rmSync(profile, { recursive: true, force: true });
    },
  };
}
