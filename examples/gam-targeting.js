// On-page targeting from segd for Google Ad Manager (no JSONP, no eval):
//
//   <script async src="/gam-targeting.js"
//           data-segd="https://segd.example.com" data-cookie="segd_uid" data-timeout-ms="300"></script>
//
// Reads the segd uid from a first-party cookie, fetches `?format=gam`
// (`seg=1001,1002`) with a plain GET — no credentials, no custom headers, so
// no CORS preflight — and queues `setTargeting` on googletag.cmd. It never
// holds the ad call: past the timeout it gives up, and `segdTargeting` (a
// promise) tells the page when targeting is set, e.g. to call refresh().
(function () {
  var script = document.currentScript;
  var base = script && script.getAttribute('data-segd');
  var cookieName = (script && script.getAttribute('data-cookie')) || 'segd_uid';
  var timeoutMs = Number((script && script.getAttribute('data-timeout-ms')) || 300);
  var gt = (window.googletag = window.googletag || { cmd: [] });
  gt.cmd = gt.cmd || [];

  function uidFromCookie() {
    var parts = document.cookie ? document.cookie.split('; ') : [];
    for (var i = 0; i < parts.length; i++) {
      var eq = parts[i].indexOf('=');
      if (parts[i].slice(0, eq) === cookieName) return decodeURIComponent(parts[i].slice(eq + 1));
    }
    return null;
  }

  /** "seg=1001,1002" → ["seg", ["1001","1002"]], or null. Only digits are taken as values. */
  function parse(kv) {
    var eq = kv.indexOf('=');
    if (eq < 1) return null;
    var values = kv
      .slice(eq + 1)
      .split(',')
      .filter(function (v) {
        return /^\d+$/.test(v);
      });
    return values.length ? [kv.slice(0, eq), values] : null;
  }

  window.segdTargeting = new Promise(function (resolve) {
    var uid = uidFromCookie();
    if (!base || !uid || typeof fetch !== 'function') return resolve(null);
    var ctrl = typeof AbortController === 'function' ? new AbortController() : null;
    var timer = setTimeout(function () {
      if (ctrl) ctrl.abort();
      resolve(null);
    }, timeoutMs);
    fetch(base + '/v1/segments?format=gam&uid=' + encodeURIComponent(uid), {
      credentials: 'omit',
      signal: ctrl ? ctrl.signal : undefined,
    })
      .then(function (r) {
        return r.status === 200 ? r.text() : '';
      })
      .then(function (text) {
        clearTimeout(timer);
        var kv = parse(text);
        if (!kv) return resolve(null);
        gt.cmd.push(function () {
          gt.pubads().setTargeting(kv[0], kv[1]);
        });
        resolve({ key: kv[0], values: kv[1] });
      })
      .catch(function () {
        clearTimeout(timer);
        resolve(null);
      });
  });
})();
