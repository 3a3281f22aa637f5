/*
 * polysocket.js 1.0.0: a drop-in WebSocket that falls back to plain HTTP.
 *
 *   var ws = new PolySocket('wss://api.example.com/live', [],
 *                           {router: 'https://ps.example.com', token: 'T'});
 *
 * The native WebSocket is used when the browser has one and it opens. When
 * it is missing, fails before opening (a proxy that breaks the upgrade),
 * has not opened within options.connectTimeout (a proxy or server that
 * never answers), failed before on this page session for the URL's origin
 * (remembered in sessionStorage), or options.forcePolyfill is set, the
 * same object talks to a polysocket relay: JSONP script tags for /create,
 * /j (long-poll receive) and /s (send), and XHR POST with CORS for large
 * sends where the browser has it. The page sees one 'open' event either
 * way, and over the relay only once the session host has answered.
 *
 * Written in ES3 so it runs on IE6 and every later browser: no ES5 library
 * calls, no trailing commas, no reserved words as property names, no
 * getters. client/es3_test.go enforces this. The only global is
 * PolySocket; JSONP callbacks live on PolySocket._cb.
 *
 * Non-standard, read-only by convention: ps.transport is "websocket" or
 * "relay" (what the socket uses now).
 */
(function (win) {
  var VERSION = '1.0.0';
  var CONNECTING = 0, OPEN = 1, CLOSING = 2, CLOSED = 3;
  var URL_MAX = 2000;          // keep every GET URL under this many chars
  var POST_MAX = 262144;       // encoded bytes of 'd' per POST
  var TTL = 25000;             // long-poll hold time asked of the relay
  var SEND_TIMEOUT = 15000;    // a /s or /c request that takes longer failed
  var BACKOFF_MIN = 250, BACKOFF_MAX = 5000, GIVE_UP = 30000;
  var GONE_GRACE = 2000;       // after a 403, wait this long for /j's close
  // The native WebSocket's time to open, and the relay session host's
  // time to answer its first poll, before we give up on that path.
  // Engine.IO waits 10 s for an upgrade while it already has a working
  // transport; SockJS waits a few round trips. The page has nothing while
  // it waits, so 5 s: a handshake of three or four round trips on a slow
  // mobile link (about 1 s each) still opens natively.
  var CONNECT_TIMEOUT = 5000;
  // sessionStorage key prefix of an origin whose native path failed.
  var REMEMBER_KEY = 'polysocket.fallback:';
  // Whole small messages go out this many at a time (the relay applies
  // them in n order, holding early ones); with the long poll that stays
  // under the six connections a browser opens per host.
  var MAX_FLIGHT = 4;
  var SEND_WINDOW = 64;         // the relay holds sends this far ahead (session SendWindow)
  var doc = win.document;
  // The native constructor as the page had it when we loaded (or when
  // install replaced it): the native-first attempt still needs it once
  // PolySocket stands in for window.WebSocket.
  var loadedNative = win.WebSocket || win.MozWebSocket;
  var ownScript = currentScript();
  var defaultRouter = scriptOrigin(ownScript);
  var seqCb = 0;               // JSONP callback counter
  var live = [];               // relay sessions, closed on page unload
  var unloadHooked = false;

  function noop() {}

  function now() { return new Date().getTime(); }

  // later runs fn soon, outside the caller's stack.
  function later(fn, ms) { return win.setTimeout(fn, ms || 0); }

  // domError builds what WebSocket throws: a DOMException where the
  // browser can make one, else an Error with the same name.
  function domError(name, msg) {
    try {
      if (typeof win.DOMException === 'function') {
        return new win.DOMException(msg, name);
      }
    } catch (e) {}
    var err = new Error(msg);
    err.name = name;
    return err;
  }

  // currentScript finds this file's script tag while it executes:
  // document.currentScript, or in old browsers the last script tag, which
  // is this one only while the parser runs (not for an ES module import
  // or a script added later: then none).
  function currentScript() {
    if (doc && doc.currentScript) { return doc.currentScript; }
    if (!doc || !doc.getElementsByTagName || (doc.readyState && doc.readyState !== 'loading')) { return null; }
    var s = doc.getElementsByTagName('script');
    return s.length ? s[s.length - 1] : null;
  }

  // scriptOrigin is the origin el was loaded from, the default router.
  function scriptOrigin(el) {
    var m = /^(https?:\/\/[^\/?#]+)/i.exec((el && el.src) || '');
    return m ? m[1] : '';
  }

  // dataAttr reads a data-* attribute of el; '' when missing.
  function dataAttr(el, name) {
    return (el && el.getAttribute && el.getAttribute('data-' + name)) || '';
  }

  function hasArrayBuffer() { return typeof win.ArrayBuffer === 'function' || typeof win.ArrayBuffer === 'object'; }
  function hasBlob() { return typeof win.Blob === 'function' || typeof win.Blob === 'object'; }

  // corsXHR reports whether XMLHttpRequest can make cross-origin requests
  // and read their status (IE10+, every current browser). Asked once.
  var cors = null;
  function corsXHR() {
    if (cors === null) {
      try {
        cors = !!win.XMLHttpRequest && 'withCredentials' in new win.XMLHttpRequest();
      } catch (e) { cors = false; }
    }
    return cors;
  }

  // ---------------------------------------------------------------- utf-8

  // utf8Len counts the UTF-8 bytes of s (a surrogate pair is 4 bytes).
  function utf8Len(s) {
    var n = 0, i, c;
    for (i = 0; i < s.length; i++) {
      c = s.charCodeAt(i);
      if (c < 0x80) { n += 1; } else if (c < 0x800) { n += 2; } else if (c >= 0xD800 && c <= 0xDBFF && i + 1 < s.length) { n += 4; i++; } else { n += 3; }
    }
    return n;
  }

  // wellFormed replaces lone surrogates with U+FFFD, as WebSocket.send
  // does; encodeURIComponent would throw on them.
  function wellFormed(s) {
    return s.replace(/[\uD800-\uDBFF][\uDC00-\uDFFF]|[\uD800-\uDFFF]/g, function (m) {
      return m.length === 2 ? m : '\uFFFD';
    });
  }

  // unreserved are the ASCII characters encodeURIComponent leaves alone.
  var unreserved = /[A-Za-z0-9\-_.!~*'()]/;

  // cutText returns the end of the longest piece of s from start whose
  // encodeURIComponent is at most budget characters, never splitting a
  // surrogate pair; also its UTF-8 length. It always takes at least one
  // character when any remain.
  function cutText(s, start, budget) {
    var i = start, used = 0, bytes = 0, c, w, b, step;
    while (i < s.length) {
      c = s.charCodeAt(i);
      step = 1;
      if (c < 0x80) { b = 1; w = unreserved.test(s.charAt(i)) ? 1 : 3; } else if (c < 0x800) { b = 2; w = 6; } else if (c >= 0xD800 && c <= 0xDBFF) { b = 4; w = 12; step = 2; } else { b = 3; w = 9; }
      if (used + w > budget && i > start) { break; }
      used += w; bytes += b; i += step;
    }
    return {end: i, bytes: bytes};
  }

  // --------------------------------------------------------------- base64

  var B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
  var B64REV = {};
  (function () { for (var i = 0; i < 64; i++) { B64REV[B64.charAt(i)] = i; } }());

  // b64enc encodes bytes[from:to] (a Uint8Array) as standard base64.
  function b64enc(bytes, from, to) {
    var out = [], i, n, rest = (to - from) % 3, end = to - rest;
    for (i = from; i < end; i += 3) {
      n = (bytes[i] << 16) | (bytes[i + 1] << 8) | bytes[i + 2];
      out.push(B64.charAt(n >> 18) + B64.charAt((n >> 12) & 63) + B64.charAt((n >> 6) & 63) + B64.charAt(n & 63));
    }
    if (rest === 1) {
      n = bytes[end] << 16;
      out.push(B64.charAt(n >> 18) + B64.charAt((n >> 12) & 63) + '==');
    } else if (rest === 2) {
      n = (bytes[end] << 16) | (bytes[end + 1] << 8);
      out.push(B64.charAt(n >> 18) + B64.charAt((n >> 12) & 63) + B64.charAt((n >> 6) & 63) + '=');
    }
    return out.join('');
  }

  // b64dec decodes standard base64 into an ArrayBuffer, or into a binary
  // string (one char per byte) where the browser has no ArrayBuffer.
  function b64dec(s) {
    s = s.replace(/[^A-Za-z0-9+\/]/g, '');
    var len = Math.floor(s.length * 3 / 4), i, j = 0, n, k;
    var out = hasArrayBuffer() ? new win.Uint8Array(len) : [];
    for (i = 0; i < s.length; i += 4) {
      n = 0;
      for (k = 0; k < 4; k++) { n = (n << 6) | (i + k < s.length ? B64REV[s.charAt(i + k)] : 0); }
      if (j < len) { out[j++] = (n >> 16) & 255; }
      if (j < len) { out[j++] = (n >> 8) & 255; }
      if (j < len) { out[j++] = n & 255; }
    }
    if (!hasArrayBuffer()) {
      for (i = 0; i < out.length; i++) { out[i] = String.fromCharCode(out[i]); }
      return out.join('');
    }
    return out.buffer;
  }

  // bytesOf copies the bytes of an ArrayBuffer or view (the page may reuse
  // its buffer right after send), or returns null for anything else.
  function bytesOf(d) {
    if (!hasArrayBuffer() || d === null || typeof d !== 'object') { return null; }
    var src = null, copy;
    if (d instanceof win.ArrayBuffer) {
      src = new win.Uint8Array(d);
    } else if (d.buffer instanceof win.ArrayBuffer && typeof d.byteLength === 'number') {
      src = new win.Uint8Array(d.buffer, d.byteOffset || 0, d.byteLength);
    }
    if (!src) { return null; }
    copy = new win.Uint8Array(src.length);
    copy.set(src);
    return copy;
  }

  // --------------------------------------------------------------- jsonp

  // query encodes params (skipping undefined values) as a query string.
  function query(p) {
    var out = [], k;
    for (k in p) {
      if (p.hasOwnProperty(k) && p[k] !== undefined && p[k] !== null) {
        out.push(k + '=' + encodeURIComponent(String(p[k])));
      }
    }
    return out.join('&');
  }

  // jsonp loads url?cb=...&params as a script tag. ok(reply) runs when the
  // callback runs; fail() when the script fails to load, loads without
  // calling back (an error status) or takes longer than timeout ms.
  // Exactly one of them runs; the tag and callback are removed after.
  // Returns a function that abandons the request.
  function jsonp(url, params, timeout, ok, fail) {
    var name = 'c' + (++seqCb), cbs = PolySocket._cb, done = false, timer;
    var head = doc.getElementsByTagName('head')[0] || doc.documentElement;
    var script = doc.createElement('script');
    var qs = query(params);
    function finish(good, reply) {
      if (done) { return; }
      done = true;
      win.clearTimeout(timer);
      script.onload = script.onerror = script.onreadystatechange = null;
      if (script.parentNode) { script.parentNode.removeChild(script); }
      // A late answer must find a harmless callback; drop it after a while.
      cbs[name] = noop;
      later(function () { try { delete cbs[name]; } catch (e) { cbs[name] = undefined; } }, 60000);
      if (good) { ok(reply); } else if (good === false) { fail(); }
    }
    cbs[name] = function (reply) { finish(true, reply); };
    script.type = 'text/javascript';
    script.async = true;
    // Chromium delays low-priority requests (async scripts are) beyond
    // about ten in flight per page; long polls would starve the sends.
    script.setAttribute('fetchpriority', 'high');
    script.src = url + '?cb=PolySocket._cb.' + name + (qs ? '&' + qs : '');
    // Loaded without calling back: an HTTP error status or a bad body.
    script.onload = script.onerror = function () { finish(false); };
    script.onreadystatechange = function () {
      // Old IE: by 'loaded'/'complete' a good script has already run.
      if (/loaded|complete/.test(script.readyState)) { finish(false); }
    };
    timer = later(function () { finish(false); }, timeout);
    // insertBefore avoids IE6's crash with appendChild under a <base> tag.
    head.insertBefore(script, head.firstChild);
    return function () { finish(null); };
  }

  // post sends body to url with a CORS XHR (no preflight: a form body) and
  // calls back with the HTTP status, 0 for a network error or timeout.
  function post(url, body, timeout, cb) {
    xhrStatus('POST', url, body, timeout, cb);
  }

  // xhrStatus makes a CORS XHR (a simple request, never preflighted) and
  // calls back with its HTTP status only, 0 for a network error or
  // timeout. body null means a GET.
  function xhrStatus(method, url, body, timeout, cb) {
    var xhr = new win.XMLHttpRequest(), done = false, timer;
    function finish(status) {
      if (done) { return; }
      done = true;
      win.clearTimeout(timer);
      xhr.onreadystatechange = noop;
      cb(status);
    }
    xhr.open(method, url, true);
    if (body !== null) { xhr.setRequestHeader('Content-Type', 'application/x-www-form-urlencoded'); }
    xhr.onreadystatechange = function () {
      if (xhr.readyState === 4) { finish(xhr.status || 0); }
    };
    timer = later(function () { finish(0); try { xhr.abort(); } catch (e) {} }, timeout);
    xhr.send(body);
  }

  // ------------------------------------------------------------ PolySocket

  /**
   * PolySocket(url, protocols, options) behaves like new WebSocket(url,
   * protocols). options.router is the router's base URL (default: where
   * this file was loaded from), options.token the token the router checks,
   * options.forcePolyfill skips the native WebSocket. options.connectTimeout
   * (ms, default 5000) bounds the native WebSocket's opening and the relay
   * session host's first answer. options.rememberFallback: false turns off
   * remembering, per page session and origin, that the native path failed.
   */
  function PolySocket(url, protocols, options) {
    var m = /^(wss?):\/\/[^\/?#\s]+[^#\s]*$/i.exec(String(url));
    if (!m) { throw domError('SyntaxError', "PolySocket: invalid url '" + url + "'"); }
    if (protocols === undefined || protocols === null) { protocols = []; }
    if (typeof protocols === 'string') { protocols = [protocols]; }
    var i, seen = {};
    for (i = 0; i < protocols.length; i++) {
      if (!/^[!#$%&'*+\-.\^_`|~0-9A-Za-z]+$/.test(protocols[i]) || seen['p' + protocols[i]]) {
        throw domError('SyntaxError', "PolySocket: invalid or duplicate protocol '" + protocols[i] + "'");
      }
      seen['p' + protocols[i]] = true;
    }
    options = options || {};
    this.url = String(url);
    this.readyState = CONNECTING;
    this.protocol = '';
    this.extensions = '';
    this.bufferedAmount = 0;
    this.binaryType = hasBlob() ? 'blob' : 'arraybuffer';
    this.transport = '';
    this.onopen = this.onmessage = this.onerror = this.onclose = null;
    this._listeners = {};
    this._protocols = protocols;
    this._router = String(options.router || defaultRouter).replace(/\/+$/, '');
    this._token = options.token;
    this._ws = null;
    this._relay = null;
    this._closeAsked = false;
    this._connectTimeout = options.connectTimeout > 0 ? Number(options.connectTimeout) : CONNECT_TIMEOUT;
    this._remember = options.rememberFallback !== false;

    var Native = win.WebSocket;
    if (ours(Native)) { Native = loadedNative; }
    if (options.forcePolyfill) {
      startRelay(this, 'forced');
    } else if (!Native) {
      startRelay(this, 'none');
    } else if (this._remember && fellBack(this.url)) {
      startRelay(this, 'remembered');
    } else if (!startNative(this, Native)) {
      startRelay(this, 'failed');
    }
  }

  PolySocket.CONNECTING = PolySocket.prototype.CONNECTING = CONNECTING;
  PolySocket.OPEN = PolySocket.prototype.OPEN = OPEN;
  PolySocket.CLOSING = PolySocket.prototype.CLOSING = CLOSING;
  PolySocket.CLOSED = PolySocket.prototype.CLOSED = CLOSED;
  PolySocket.version = VERSION;
  PolySocket._cb = {};

  /** addEventListener(type, fn) adds fn once for type. */
  PolySocket.prototype.addEventListener = function (type, fn) {
    if (typeof fn !== 'function' && !(fn && typeof fn.handleEvent === 'function')) { return; }
    var l = this._listeners[type] || (this._listeners[type] = []), i;
    for (i = 0; i < l.length; i++) { if (l[i] === fn) { return; } }
    l.push(fn);
  };

  /** removeEventListener(type, fn) removes fn for type. */
  PolySocket.prototype.removeEventListener = function (type, fn) {
    var l = this._listeners[type], i;
    if (!l) { return; }
    for (i = 0; i < l.length; i++) {
      if (l[i] === fn) { l.splice(i, 1); return; }
    }
  };

  /** dispatchEvent(ev) calls on{type} then the listeners, like a DOM event. */
  PolySocket.prototype.dispatchEvent = function (ev) {
    var h = this['on' + ev.type], l = (this._listeners[ev.type] || []).slice(0), i;
    ev.target = ev.currentTarget = this;
    if (typeof h === 'function') { call(this, h, ev); }
    for (i = 0; i < l.length; i++) { call(this, l[i], ev); }
    return true;
  };

  // call runs one handler; a throwing handler is reported later so it can
  // neither break the transport nor stop the other handlers.
  function call(ps, fn, ev) {
    try {
      if (typeof fn === 'function') { fn.call(ps, ev); } else { fn.handleEvent(ev); }
    } catch (e) {
      later(function () { throw e; });
    }
  }

  // fire dispatches a plain-object event: {type, target, data} for
  // 'message', {type, target, code, reason, wasClean} for 'close'.
  function fire(ps, type, ev) {
    ev = ev || {};
    ev.type = type;
    ps.dispatchEvent(ev);
  }

  // opened fires the one 'open' a PolySocket ever fires.
  function opened(ps) {
    if (ps.readyState !== CONNECTING) { return; }
    ps.readyState = OPEN;
    fire(ps, 'open');
  }

  // finished ends the socket once: 'close', after an 'error' when errInfo
  // is given. As WebSocket, 'error' means this side failed the connection
  // (relay unreachable, session lost, closed while connecting); a target
  // that vanished (close 1006 from the relay) is only a 'close'.
  function finished(ps, code, reason, wasClean, errInfo) {
    if (ps.readyState === CLOSED) { return; }
    ps.readyState = CLOSED;
    if (errInfo) { fire(ps, 'error', errInfo); }
    fire(ps, 'close', {code: code, reason: reason || '', wasClean: !!wasClean});
  }

  /**
   * send(data) queues a string, ArrayBuffer, typed array, DataView or Blob.
   * It throws InvalidStateError while CONNECTING; after close it only
   * counts the bytes in bufferedAmount, as WebSocket does.
   */
  PolySocket.prototype.send = function (data) {
    if (this.readyState === CONNECTING) { throw domError('InvalidStateError', 'PolySocket: still CONNECTING'); }
    var bytes = typeof data === 'string' ? null : bytesOf(data);
    var blob = !bytes && hasBlob() && data instanceof win.Blob;
    if (!bytes && !blob) { data = String(data); }
    var size = bytes ? bytes.length : blob ? data.size : utf8Len(data);
    if (this.readyState !== OPEN) { this.bufferedAmount += size; return; }
    if (this._ws) {
      this._ws.send(bytes ? bytes.buffer : data);
      trackNative(this);
    } else {
      this._relay.send(bytes ? {t: 'b', bytes: bytes} : blob ? {t: 'b', blob: data} : {t: 't', s: wellFormed(data)}, size);
    }
  };

  /**
   * close(code, reason) closes the socket. code must be 1000 or 3000-4999
   * (InvalidAccessError otherwise), reason at most 123 UTF-8 bytes
   * (SyntaxError otherwise). Sends already queued go out first.
   */
  PolySocket.prototype.close = function (code, reason) {
    if (code !== undefined) {
      code = Number(code);
      if (code !== Math.floor(code) || !(code === 1000 || (code >= 3000 && code <= 4999))) {
        throw domError('InvalidAccessError', 'PolySocket: close code must be 1000 or 3000-4999');
      }
    }
    if (reason !== undefined) {
      reason = wellFormed(String(reason));
      if (utf8Len(reason) > 123) { throw domError('SyntaxError', 'PolySocket: close reason longer than 123 bytes'); }
    }
    if (this.readyState === CLOSING || this.readyState === CLOSED) { return; }
    this._closeAsked = true;
    if (this.readyState === CONNECTING) {
      // As WebSocket: closing before open fails the connection.
      this.readyState = CLOSING;
      if (this._ws) { detachNative(this); }
      if (this._relay) { this._relay.stop(); }
      var self = this;
      later(function () { finished(self, 1006, '', false, {}); });
      return;
    }
    this.readyState = CLOSING;
    if (this._ws) { this._ws.close(code, reason); } else { this._relay.close(code, reason); }
  };

  // toBinary turns received bytes (ArrayBuffer) into what binaryType asks.
  function toBinary(ps, buf) {
    if (ps.binaryType === 'blob' && hasBlob() && hasArrayBuffer() && buf instanceof win.ArrayBuffer) {
      return new win.Blob([buf]);
    }
    return buf;
  }

  // ------------------------------------------------------- native transport

  // startNative opens the native WebSocket and proxies its events; it
  // returns false when the constructor throws (e.g. mixed content).
  function startNative(ps, Native) {
    var ws;
    try {
      ws = ps._protocols.length ? new Native(ps.url, ps._protocols) : new Native(ps.url);
    } catch (e) {
      return false;
    }
    ps._ws = ws;
    ps.transport = 'websocket';
    // Always take ArrayBuffers and convert: the page may change
    // binaryType at any time and we cannot intercept the assignment.
    try { ws.binaryType = 'arraybuffer'; } catch (e2) {}
    ps._nativeTimer = later(function () {
      if (ps._ws === ws && ps.readyState === CONNECTING) { nativeFailed(ps, 'timeout'); }
    }, ps._connectTimeout);
    ws.onopen = function () {
      win.clearTimeout(ps._nativeTimer);
      ps.protocol = ws.protocol || '';
      ps.extensions = ws.extensions || '';
      opened(ps);
    };
    ws.onmessage = function (e) {
      var d = e.data;
      fire(ps, 'message', {data: typeof d === 'string' ? d : toBinary(ps, d)});
    };
    ws.onerror = function () {
      if (ps.readyState === CONNECTING) { nativeFailed(ps); } else if (ps.readyState !== CLOSED) { fire(ps, 'error'); }
    };
    ws.onclose = function (e) {
      if (ps.readyState === CONNECTING) { nativeFailed(ps); return; }
      ps.bufferedAmount = 0;
      // 'error' was already proxied by onerror for unclean ends.
      if (ps.readyState !== CLOSED) {
        ps.readyState = CLOSED;
        fire(ps, 'close', {code: e.code, reason: e.reason || '', wasClean: !!e.wasClean});
      }
    };
    return true;
  }

  // detachNative forgets the native socket and closes it quietly.
  function detachNative(ps) {
    var ws = ps._ws;
    ps._ws = null;
    win.clearTimeout(ps._nativeTimer);
    ws.onopen = ws.onmessage = ws.onerror = ws.onclose = null;
    try { ws.close(); } catch (e) {}
  }

  // nativeFailed: the native socket died (why 'failed') or did not open
  // in time ('timeout') before opening, so the page has seen nothing yet;
  // try the relay instead.
  function nativeFailed(ps, why) {
    detachNative(ps);
    if (!ps._closeAsked) { startRelay(ps, why || 'failed'); }
  }

  // storage is sessionStorage, or null where there is none or it may not
  // be used (old browsers, sandboxed frames, some private modes).
  function storage() {
    try { return win.sessionStorage || null; } catch (e) { return null; }
  }

  // fellBack reports whether the native path to url's origin failed
  // earlier in this page session.
  function fellBack(url) {
    var s = storage();
    try { return !!s && s.getItem(REMEMBER_KEY + originOf(url)) === '1'; } catch (e) { return false; }
  }

  // rememberFallback notes that the native path to url's origin failed.
  function rememberFallback(url) {
    var s = storage();
    try { if (s) { s.setItem(REMEMBER_KEY + originOf(url), '1'); } } catch (e) {}
  }

  // originOf is the scheme, host and port of a ws:// or wss:// URL.
  function originOf(url) {
    var m = /^(wss?:\/\/[^\/?#]+)/i.exec(url);
    return m ? m[1].toLowerCase() : url;
  }

  // trackNative mirrors the native bufferedAmount while it is non-zero,
  // since an ES3 object cannot have a live getter.
  function trackNative(ps) {
    if (ps._tracking) { return; }
    ps._tracking = true;
    (function tick() {
      var ws = ps._ws;
      ps.bufferedAmount = ws ? ws.bufferedAmount : 0;
      if (ws && ps.bufferedAmount > 0) { later(tick, 50); } else { ps._tracking = false; }
    }());
  }

  // -------------------------------------------------------- relay transport

  // startRelay asks the router for a session and opens on its answer.
  function startRelay(ps, why) {
    ps.transport = 'relay';
    if (!ps._router || !doc) {
      later(function () { finished(ps, 1006, 'PolySocket: no router', false, {message: 'no router configured'}); });
      return;
    }
    ps._relay = new Relay(ps, why);
  }

  // Relay is one session with a polysocket relay: the create call, the
  // receive loop (/j) and the ordered send queue (/s, /c). One request of
  // each kind is in flight at a time.
  function Relay(ps, why) {
    var self = this;
    this.ps = ps;
    this.why = why;
    this.done = false;
    this.ack = 0;            // highest seq processed
    this.n = 0;              // last send number used
    this.queue = [];         // {t, s|bytes|blob, pos, size} or {close}, not yet all sent
    this.flying = [];        // requests in flight: {req, item, solo, failedAt, tries}
    this.pollFailedAt = 0;
    this.abortPoll = noop;
    var m = /^(https?:)/i.exec(ps._router);
    this.scheme = m ? m[1].toLowerCase() : 'http:';
    this.abortPoll = jsonp(ps._router + '/create', {
      from: 'polysocketjs-' + VERSION,
      target: ps.url,
      token: ps._token,
      protocols: ps._protocols.length ? ps._protocols.join(',') : undefined,
      why: why
    }, SEND_TIMEOUT + 15000, function (r) {
      self.created(r);
    }, function () {
      self.lost('PolySocket: router unreachable', {message: 'router unreachable'});
    });
  }

  Relay.prototype.created = function (r) {
    var ps = this.ps;
    if (this.done) { return; }
    if (!r || !r.ok) {
      var msg = (r && r.error) || 'create failed';
      this.lost(msg, {message: msg, errorCode: r && r.code});
      return;
    }
    this.base = this.scheme + '//' + r.fqdn;
    this.socket = encodeURIComponent(r.socket);
    // Room for the d parameter in a GET: the URL without it, with room
    // for long callback names and numbers.
    this.budget = URL_MAX - (this.base + '/s/' + this.socket + '?cb=PolySocket._cb.c0000000000&t=t&n=0000000000&f=1&d=').length;
    this.host = r.fqdn;
    ps.protocol = r.protocol || '';
    live.push(this);
    hookUnload();
    this.probe();
  };

  // probe asks the session host once, at once (ttl=0), before the page
  // sees 'open': a WebSocket's open means the path works end to end. A
  // failure is retried with backoff until connectTimeout has passed since
  // the first try; then the socket closes 1006 with the host in the
  // reason, rather than opening and dying slowly.
  Relay.prototype.probe = function () {
    var self = this, ps = this.ps, left;
    if (this.done) { return; }
    if (!this.probeStart) { this.probeStart = now(); this.probeTries = 0; }
    left = this.probeStart + ps._connectTimeout - now();
    if (left <= 0) { this.unreachable(); return; }
    this.abortPoll = jsonp(this.base + '/j/' + this.socket, {ttl: 0, a: 0}, left, function (r) {
      if (self.done) { return; }
      if (!r || r.ok === false) { self.lost('', {message: (r && r.error) || 'session gone'}); return; }
      // The relay reached the target where the native socket did not:
      // the network breaks WebSockets, so the next socket skips them.
      if (ps._remember && (self.why === 'failed' || self.why === 'timeout')) { rememberFallback(ps.url); }
      opened(ps);
      self.deliver(r.messages || []);
      self.poll();
    }, function () {
      var wait = backoff(self.probeTries++), rest = self.probeStart + ps._connectTimeout - now();
      if (self.done) { return; }
      // No time for another try: give up when the time is up, not before.
      later(function () { if (wait < rest) { self.probe(); } else if (!self.done) { self.unreachable(); } }, wait < rest ? wait : rest);
    });
  };

  // unreachable: the session host did not answer within connectTimeout.
  Relay.prototype.unreachable = function () {
    var msg = 'PolySocket: session host ' + this.host + ' unreachable';
    this.lost(msg, {message: msg});
  };

  // stop ends all activity without telling anyone.
  Relay.prototype.stop = function () {
    var i;
    if (this.done) { return; }
    this.done = true;
    this.abortPoll();
    for (i = 0; i < live.length; i++) {
      if (live[i] === this) { live.splice(i, 1); break; }
    }
  };

  // end closes the PolySocket with what the relay said.
  Relay.prototype.end = function (code, reason, wasClean, errInfo) {
    this.stop();
    this.ps.bufferedAmount = 0;
    finished(this.ps, code, reason, wasClean, errInfo);
  };

  // lost: the session is gone without a close message.
  Relay.prototype.lost = function (reason, errInfo) {
    this.end(1006, reason || '', false, errInfo || {});
  };

  // backoff returns the wait before retry number k (0-based): doubling
  // up to BACKOFF_MAX, plus up to half again at random, so that the
  // sessions a network blip failed together do not retry in step.
  function backoff(k) {
    var d = BACKOFF_MIN, i;
    for (i = 0; i < k && d < BACKOFF_MAX; i++) { d *= 2; }
    if (d > BACKOFF_MAX) { d = BACKOFF_MAX; }
    return d + Math.floor(Math.random() * d / 2);
  }

  // ----- receive

  // poll keeps one /j long-poll open, acking what was processed.
  Relay.prototype.poll = function () {
    var self = this;
    if (this.done) { return; }
    this.abortPoll = jsonp(this.base + '/j/' + this.socket, {ttl: TTL, a: this.ack}, TTL + 10000, function (r) {
      if (self.done) { return; }
      if (!r || r.ok === false) { self.lost('PolySocket: session gone', {message: (r && r.error) || 'session gone'}); return; }
      self.pollFailedAt = 0;
      self.pollTries = 0;
      self.deliver(r.messages || []);
      self.poll();
    }, function () {
      self.pollFailed();
    });
  };

  // pollFailed: the poll's script failed to load. A script tag cannot
  // tell a network failure from the relay's 403 (it lost the session:
  // restarted, or forgot it after the idle timeout while we were cut
  // off), so where CORS XHR exists ask /j once as plain JSON and read the
  // status. ttl=0 with the same ack answers at once and consumes nothing:
  // unacked messages are re-delivered to the next poll. A 403 is close
  // 1006 now rather than after GIVE_UP of retries.
  Relay.prototype.pollFailed = function () {
    var self = this, wait;
    if (this.done) { return; }
    if (!this.pollFailedAt) { this.pollFailedAt = now(); this.pollTries = 0; }
    if (now() - this.pollFailedAt > GIVE_UP) { this.lost('PolySocket: relay unreachable', {message: 'relay unreachable'}); return; }
    wait = backoff(this.pollTries++);
    if (!corsXHR()) {
      later(function () { self.poll(); }, wait);
      return;
    }
    xhrStatus('GET', this.base + '/j/' + this.socket + '?' + query({ttl: 0, a: this.ack}), null, SEND_TIMEOUT, function (status) {
      if (self.done) { return; }
      if (status === 403) { self.lost('PolySocket: session gone', {message: 'session gone'}); return; }
      later(function () { self.poll(); }, wait);
    });
  };

  // deliver hands received messages to the page in order, skipping what
  // a re-delivery repeats.
  Relay.prototype.deliver = function (msgs) {
    var i, m, ps = this.ps;
    for (i = 0; i < msgs.length && !this.done; i++) {
      m = msgs[i];
      if (m.seq) {
        if (m.seq <= this.ack) { continue; }
        this.ack = m.seq;
      }
      if (m.type === 'text') {
        fire(ps, 'message', {data: m.data});
      } else if (m.type === 'binary') {
        fire(ps, 'message', {data: toBinary(ps, b64dec(m.data))});
      } else if (m.type === 'close') {
        this.end(m.code || 1005, m.reason || '', m.code !== 1006);
        // Ack the close so the relay can forget the session now.
        jsonp(this.base + '/j/' + this.socket, {ttl: 0, a: this.ack}, 10000, noop, noop);
      }
    }
  };

  // ----- send

  // send queues one message of size bytes.
  Relay.prototype.send = function (item, size) {
    var self = this;
    item.pos = 0;
    item.size = size;
    this.ps.bufferedAmount += size;
    if (item.blob) {
      // Read the Blob now; the queue waits for it, keeping order.
      var fr = new win.FileReader();
      item.pending = true;
      fr.onload = function () {
        item.bytes = new win.Uint8Array(fr.result);
        item.pending = false;
        item.blob = null;
        self.pump();
      };
      fr.onerror = function () {
        if (self.done) { return; }
        self.ps.bufferedAmount -= size;
        self.queue.splice(self.indexOf(item), 1);
        fire(self.ps, 'error', {message: 'could not read Blob'});
        self.pump();
      };
      fr.readAsArrayBuffer(item.blob);
    }
    this.queue.push(item);
    this.pump();
  };

  Relay.prototype.indexOf = function (item) {
    for (var i = 0; i < this.queue.length; i++) { if (this.queue[i] === item) { return i; } }
    return -1;
  };

  // close queues /c behind the pending sends.
  Relay.prototype.close = function (code, reason) {
    this.queue.push({close: true, code: code, reason: reason});
    this.pump();
  };

  // pump starts requests while there is room. Whole messages that fit a
  // GET go out up to MAX_FLIGHT at once; a fragment, a POST or the close
  // goes alone, so a refused fragment can drop the rest of its message
  // before any of it is sent, and /c follows every send.
  Relay.prototype.pump = function () {
    var it, pos, n, req, solo;
    while (!this.done && !this.gone && this.flying.length < MAX_FLIGHT) {
      if (this.flying.length && this.flying[0].solo) { return; }
      // While a send is being retried nothing new goes: the relay holds
      // later numbers only up to its window (64) ahead of it.
      if (this.retrying()) { return; }
      // Nor may a number run SEND_WINDOW ahead of the oldest one still
      // in flight: a request that hangs (no failure yet) would let the
      // others run past the relay's window, which refuses them for good.
      if (this.flying.length && this.n + 1 - this.flying[0].req.p.n >= SEND_WINDOW) { return; }
      it = this.queue[0];
      if (!it || it.pending) { return; }
      pos = it.pos;
      n = this.n;
      req = this.next(it);
      solo = !!it.close || pos > 0 || !req.last || !!req.post;
      if (solo && this.flying.length) {
        // Undo the cut; it goes when the others are answered.
        it.pos = pos;
        this.n = n;
        return;
      }
      if (req.last) { this.queue.shift(); }
      var rec = {req: req, item: it, solo: solo, failedAt: 0, tries: 0};
      this.flying.push(rec);
      this.fly(rec, false);
    }
  };

  // retrying reports whether a request in flight has failed before.
  Relay.prototype.retrying = function () {
    for (var i = 0; i < this.flying.length; i++) {
      if (this.flying[i].failedAt) { return true; }
    }
    return false;
  };

  // landed takes rec out of the requests in flight.
  Relay.prototype.landed = function (rec) {
    for (var i = 0; i < this.flying.length; i++) {
      if (this.flying[i] === rec) { this.flying.splice(i, 1); return; }
    }
  };

  // next cuts the head message's next fragment into a request:
  // {path, p (params), post, bytes, last}. GET when it fits a URL, POST
  // in larger pieces when the browser has CORS XHR.
  Relay.prototype.next = function (it) {
    if (it.close) {
      return {path: '/c/', p: {code: it.code, reason: it.reason}, bytes: 0, last: true};
    }
    var cors = corsXHR(), post = false, d, end, bytes, c;
    if (it.t === 't') {
      c = cutText(it.s, it.pos, this.budget);
      if (c.end < it.s.length && cors) { c = cutText(it.s, it.pos, POST_MAX); post = true; }
      d = it.s.substring(it.pos, c.end);
      end = c.end;
      bytes = c.bytes;
    } else {
      var total = it.bytes.length, enc = 0, k;
      // Whole 3-byte groups, so only the last fragment has padding.
      var take = Math.max(3, Math.floor(this.budget * 3 / 4 / 1.1 / 3) * 3);
      if (cors && total - it.pos > take) { take = Math.floor(POST_MAX * 3 / 4 / 1.1 / 3) * 3; post = true; }
      for (k = 0; k < 8; k++) {
        end = Math.min(total, it.pos + take);
        d = b64enc(it.bytes, it.pos, end);
        enc = encodeURIComponent(d).length;
        if (post || enc <= this.budget || take <= 3) { break; }
        take = Math.max(3, Math.floor(take * this.budget / enc / 3) * 3);
      }
      bytes = end - it.pos;
    }
    var last = it.t === 't' ? end >= it.s.length : end >= it.bytes.length;
    it.pos = end;
    return {path: '/s/', p: {t: it.t, n: ++this.n, f: last ? undefined : 1, d: d}, post: post, bytes: bytes, last: last};
  };

  // fly sends rec's request (again, after a failure: same n). A retry
  // goes by POST where possible, which reads the status. 503 (the relay
  // holds too many early sends, or is busy) is retried like no answer.
  Relay.prototype.fly = function (rec, retry) {
    var self = this, req = rec.req, url = this.base + req.path + this.socket;
    if (req.post || (retry && corsXHR())) {
      post(url, query(req.p), SEND_TIMEOUT, function (status) {
        if (self.done) { return; }
        if (status >= 200 && status < 300) { self.acked(rec); } else if (status === 403) { self.sessionGone(); } else if (status === 413 || status === 400) { self.refused(rec, status); } else { self.failed(rec); }
      });
    } else {
      jsonp(url, req.p, SEND_TIMEOUT, function (r) {
        if (self.done) { return; }
        if (r && r.ok === false) {
          if (r.code === 'socket') { self.sessionGone(); } else if (r.code === 'unavailable') { self.failed(rec); } else { self.refused(rec, r.code); }
          return;
        }
        self.acked(rec);
      }, function () {
        if (!self.done) { self.failed(rec); }
      });
    }
  };

  // acked: the relay holds the request; move on.
  Relay.prototype.acked = function (rec) {
    var it = rec.item;
    this.landed(rec);
    this.ps.bufferedAmount -= rec.req.bytes;
    it.acked = (it.acked || 0) + rec.req.bytes;
    if (it.close && this.ps.readyState !== CLOSED) {
      // The close message arrives on /j; nothing more to send.
      return;
    }
    this.pump();
  };

  // refused: the relay rejected the message (413 too large, 400); drop
  // the rest of it, report an error, go on with the next one.
  Relay.prototype.refused = function (rec, why) {
    var it = rec.item;
    this.landed(rec);
    if (!rec.req.last && this.queue[0] === it) { this.queue.shift(); }
    if (!it.close) { this.ps.bufferedAmount -= it.size - (it.acked || 0); }
    fire(this.ps, 'error', {message: 'relay refused the message (' + why + ')'});
    if (it.close) { this.lost(); return; }
    this.pump();
  };

  // failed: no answer; retry with the same n after a backoff, give up
  // (close 1006) when the relay stays unreachable.
  Relay.prototype.failed = function (rec) {
    var self = this;
    if (!rec.failedAt) { rec.failedAt = now(); }
    if (now() - rec.failedAt > GIVE_UP) { this.lost('PolySocket: relay unreachable', {message: 'relay unreachable'}); return; }
    later(function () { if (!self.done && !self.gone) { self.fly(rec, true); } }, backoff(rec.tries++));
  };

  // sessionGone: a 403, the relay no longer has the session. Its close
  // message may still come on /j; if not, it is a 1006.
  Relay.prototype.sessionGone = function () {
    var self = this;
    this.gone = true;
    later(function () { if (!self.done) { self.lost('PolySocket: session gone', {message: 'session gone'}); } }, GONE_GRACE);
  };

  // --------------------------------------------------------------- unload

  // hookUnload closes live relay sessions with 1001 when the page goes,
  // so the target learns at once rather than after the idle timeout.
  function hookUnload() {
    if (unloadHooked) { return; }
    unloadHooked = true;
    if (win.addEventListener) {
      win.addEventListener('onpagehide' in win ? 'pagehide' : 'unload', unloadAll, false);
    } else if (win.attachEvent) {
      win.attachEvent('onunload', unloadAll);
    }
  }

  function unloadAll() {
    var all = live.slice(0), i, r, url;
    for (i = 0; i < all.length; i++) {
      r = all[i];
      url = r.base + '/c/' + r.socket;
      r.stop();
      r.ps.readyState = CLOSED;
      try {
        // A beacon survives the unload; an image GET is the old way.
        if (win.navigator && win.navigator.sendBeacon) {
          win.navigator.sendBeacon(url, 'code=1001');
        } else {
          (new win.Image()).src = url + '?code=1001';
        }
      } catch (e) {}
    }
  }

  // ---------------------------------------------------------- install mode

  // merge copies from's own properties onto to (from may be missing:
  // for-in over undefined throws in ES3 engines).
  function merge(to, from) {
    var k;
    if (from) {
      for (k in from) { if (from.hasOwnProperty(k)) { to[k] = from[k]; } }
    }
    return to;
  }

  // ours reports whether a constructor is PolySocket or one install made.
  function ours(C) { return !!C && (C === PolySocket || C._polysocket === true); }

  /**
   * PolySocket.install(defaults) puts PolySocket in place of
   * window.WebSocket, so code that constructs WebSocket itself gets the
   * fallback unchanged: new WebSocket(url, protocols) is then
   * new PolySocket(url, protocols, defaults). defaults are PolySocket's
   * options (router, token, forcePolyfill). Returns the constructor it
   * installed, which can also be handed to a library as its WebSocket.
   */
  PolySocket.install = function (defaults) {
    var cur = win.WebSocket;
    if (cur && !ours(cur)) { loadedNative = cur; }
    function WebSocket(url, protocols, options) {
      return new PolySocket(url, protocols, merge(merge({}, defaults), options));
    }
    // instanceof and the constants work as on the real one.
    WebSocket.prototype = PolySocket.prototype;
    WebSocket.CONNECTING = CONNECTING;
    WebSocket.OPEN = OPEN;
    WebSocket.CLOSING = CLOSING;
    WebSocket.CLOSED = CLOSED;
    WebSocket._polysocket = true;
    win.WebSocket = WebSocket;
    return WebSocket;
  };

  /** PolySocket.uninstall() gives window.WebSocket back its native value. */
  PolySocket.uninstall = function () {
    if (ours(win.WebSocket)) { win.WebSocket = loadedNative; }
  };

  win.PolySocket = PolySocket;
  // <script src=".../polysocket.js" data-token="T" data-router="URL">
  // installs at once, for pages whose WebSocket users load after it.
  if (dataAttr(ownScript, 'token') || dataAttr(ownScript, 'router')) {
    PolySocket.install({router: dataAttr(ownScript, 'router') || undefined, token: dataAttr(ownScript, 'token') || undefined});
  }
}(typeof window !== 'undefined' ? window : this));
