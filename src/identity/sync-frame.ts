// The sync a page fires with one tag, without ever holding the segd uid:
//
//   page:  <script async src="https://segd.example/sync/script.js?gdpr=…">
//   script.js  (the same for every browser: no uid, no list) adds a hidden
//              iframe on segd's own origin, /sync/frame.html?<the same query>
//   frame.html (segd's origin, with the browser's segd cookie) holds the sync
//              list and fires it: an image per redirect/pixel sync, a nested
//              hidden iframe per iframe sync
//
// The partner URLs carry the uid (a partner needs it), but only inside the
// frame: the embedding page cannot read a cross-origin frame's document, its
// script, or its resource timings, and the script it runs itself carries
// nothing but the frame's address. The frame's only script is fixed and
// allowed by its hash (CSP); the list is data (`application/json`), never code.
import { createHash } from 'node:crypto';

/** Adds the frame; finds segd's address (and any path prefix) from its own src. */
export const LOADER_SCRIPT =
  '(function(d){var s=d.currentScript;if(!s||!s.src)return;' +
  "var f=d.createElement('iframe');f.src=s.src.replace(/\\/sync\\/script\\.js(?=[?#]|$)/,'/sync/frame.html');" +
  "f.width=f.height='0';f.style.display='none';f.title='';f.setAttribute('aria-hidden','true');" +
  '(d.body||d.documentElement).appendChild(f);})(document);\n';

/** Inside the frame: fires each sync of the list. */
const RUNNER =
  "(function(d){var s=JSON.parse(d.getElementById('s').textContent);for(var i=0;i<s.length;i++){var u=s[i];" +
  "if(u.type==='iframe'){var f=d.createElement('iframe');f.src=u.url;f.width=f.height='0';f.style.display='none';" +
  "f.setAttribute('aria-hidden','true');d.body.appendChild(f);}" +
  'else{var m=new Image(1,1);m.src=u.url;}}})(document);';

const RUNNER_HASH = createHash('sha256').update(RUNNER).digest('base64');

/**
 * The frame's policy: no script but the runner, images and frames anywhere
 * (partner sync URLs and their redirects), nothing else; any page may embed it.
 */
export const FRAME_CSP = `default-src 'none'; script-src 'sha256-${RUNNER_HASH}'; img-src *; frame-src *; frame-ancestors *; base-uri 'none'; form-action 'none'`;

/** The frame page holding `list`. */
export function frameHtml(list: Array<{ url: string; type: string }>): string {
  // JSON inside a script element: escape what could end the element.
  const data = JSON.stringify(list)
    .replace(/</g, '\\u003c')
    .replace(/\u2028/g, '\\u2028')
    .replace(/\u2029/g, '\\u2029');
  return `<!doctype html><meta charset="utf-8"><title>sync</title><body><script type="application/json" id="s">${data}</script><script>${RUNNER}</script></body>\n`;
}
