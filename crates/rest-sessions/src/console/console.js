"use strict";
// The console drives the public REST routes with the bearer token, as any client would.
// Everything from the server is written with textContent, never as markup: user ids,
// ips and user agents are set by the apps' users.
(function () {
  var KEY = "rs-console-token";
  var WINDOWS = [[300, "Active 5 min"], [3600, "Active 1 h"], [86400, "Active 24 h"]];
  // The windows /stats counts over: 5 min, then every hour up to 24 h (the chart's bars
  // are the differences between consecutive hours). Counted from the app's indexes, so
  // the cost is the same on an app of any size.
  var STATS = [300];
  for (var h = 1; h <= 24; h++) STATS.push(h * 3600);
  var $ = function (id) { return document.getElementById(id); };
  var current = null;
  var feed = null;

  function token() { return sessionStorage.getItem(KEY) || ""; }
  function enc(s) { return encodeURIComponent(s); }
  function el(tag, text, cls) {
    var e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }
  function button(text, cls, label) {
    var b = el("button", text, cls);
    b.type = "button";
    if (label) b.setAttribute("aria-label", label);
    return b;
  }
  function stat(dl, name, value, key) {
    var d = el("div");
    d.appendChild(el("dt", name));
    var v = el("dd", value);
    if (key) v.dataset.stat = key;
    d.appendChild(v);
    dl.appendChild(d);
    return v;
  }
  function ago(seconds) {
    if (seconds < 60) return seconds + " s";
    if (seconds < 3600) return Math.floor(seconds / 60) + " min";
    if (seconds < 86400) return Math.floor(seconds / 3600) + " h";
    return Math.floor(seconds / 86400) + " d";
  }

  // A request with the token; a 401 forgets it and shows the sign-in form again.
  function api(method, path, extra) {
    var headers = { Authorization: "Bearer " + token() };
    if (extra) for (var k in extra) headers[k] = extra[k];
    return fetch(path, { method: method, headers: headers, cache: "no-store", credentials: "omit" })
      .then(function (r) {
        if (r.status === 401) { signOut("The server refused this token."); throw new Error("unauthorized"); }
        return r.json().catch(function () { return null; }).then(function (body) {
          if (!r.ok) {
            var e = new Error((body && body.message) || ("HTTP " + r.status));
            e.code = body && body.error;
            throw e;
          }
          return body;
        });
      });
  }

  function signOut(message) {
    sessionStorage.removeItem(KEY);
    stopFeed();
    $("console").hidden = true;
    $("forget").hidden = true;
    $("login").hidden = false;
    $("login-error").textContent = message || "";
    $("token").value = "";
    $("token").focus();
  }

  function start() {
    $("login").hidden = true;
    $("console").hidden = false;
    $("forget").hidden = false;
    $("apps-status").textContent = "Loading…";
    api("GET", "/console/apps").then(function (body) {
      var apps = body.apps || [];
      $("apps").textContent = "";
      $("apps-status").textContent = apps.length ? "" :
        "No apps listed (RS_CONSOLE_APPS); open one by name.";
      apps.forEach(addApp);
      var first = $("apps").querySelector("button");
      if (first) first.focus(); else $("open-app").focus();
    }).catch(function (e) { if (e.message !== "unauthorized") $("apps-status").textContent = e.message; });
    loadStore();
  }

  // The card of one app: its counts, and a button that opens it.
  function addApp(app) {
    var existing = $("apps").querySelector('li[data-app="' + CSS.escape(app) + '"]');
    if (existing) return existing;
    var li = el("li");
    li.dataset.app = app;
    var open = button(app, "link", "Open app " + app);
    open.addEventListener("click", function () { openApp(app); });
    li.appendChild(el("h3")).appendChild(open);
    var dl = el("dl");
    stat(dl, "Sessions", "…", "sessions");
    stat(dl, "Users", "…", "users");
    WINDOWS.forEach(function (w) { stat(dl, w[1], "…", "active-" + w[0]); });
    li.appendChild(dl);
    $("apps").appendChild(li);
    counts(li, app);
    return li;
  }

  // An app's counts, from /stats: sessions, users, users active per window, and (kept
  // for the app's view) the hourly activity and the spread over shards and masters.
  function counts(li, app) {
    var cell = function (key) { return li.querySelector('[data-stat="' + key + '"]'); };
    var keys = ["sessions", "users"].concat(WINDOWS.map(function (w) { return "active-" + w[0]; }));
    return api("GET", "/" + enc(app) + "/stats?windows=" + STATS.join(",")).then(function (body) {
      cell("sessions").textContent = body.sessions;
      cell("users").textContent = body.users;
      WINDOWS.forEach(function (w) {
        cell("active-" + w[0]).textContent = body.users_active[STATS.indexOf(w[0])];
      });
      li.stats = body;
      if (current === app) { chart(body); spread(body); }
    }).catch(function (e) {
      keys.forEach(function (k) { cell(k).textContent = "–"; });
      li.title = e.message;
    });
  }
  function refresh() {
    $("apps").querySelectorAll("li[data-app]").forEach(function (li) { counts(li, li.dataset.app); });
    loadStore();
  }

  function openApp(app) {
    var li = addApp(app);
    current = app;
    stopFeed();
    $("app-view").hidden = false;
    $("app-title").textContent = "App " + app;
    $("devices").textContent = "";
    $("user-status").textContent = "";
    $("kill-everywhere").hidden = true;
    $("events").textContent = "";
    if (li.stats) { chart(li.stats); spread(li.stats); }
    $("app-title").focus();
    checkEvents(app);
  }

  // Bars of the sessions by hour of last activity over the last 24 h (the newest hour on
  // the right): sessions active within h+1 hours less those active within h.
  function chart(stats) {
    var bins = [];
    var within = function (hours) { return hours === 0 ? 0 : stats.sessions_active[STATS.indexOf(hours * 3600)] || 0; };
    for (var i = 0; i < 24; i++) bins.push(within(24 - i) - within(23 - i));
    var max = Math.max.apply(null, bins.concat([1]));
    var NS = "http://www.w3.org/2000/svg";
    var svg = document.createElementNS(NS, "svg");
    var W = 240, H = 100, top = 10, base = 85;
    svg.setAttribute("viewBox", "0 0 " + W + " " + H);
    svg.setAttribute("role", "img");
    var total = bins.reduce(function (a, b) { return a + b; }, 0);
    svg.setAttribute("aria-label", total + " sessions active in the last 24 hours; busiest hour " + max);
    var axis = document.createElementNS(NS, "line");
    axis.setAttribute("x1", 0); axis.setAttribute("x2", W); axis.setAttribute("y1", base); axis.setAttribute("y2", base);
    svg.appendChild(axis);
    bins.forEach(function (n, i) {
      var h = Math.round((base - top) * n / max);
      var r = document.createElementNS(NS, "rect");
      r.setAttribute("x", i * 10 + 1); r.setAttribute("width", 8);
      r.setAttribute("y", base - h); r.setAttribute("height", h);
      var t = document.createElementNS(NS, "title");
      t.textContent = n + " sessions last active " + (23 - i) + "–" + (24 - i) + " h ago";
      r.appendChild(t);
      svg.appendChild(r);
    });
    [["24 h ago", 0, "start"], ["12 h", 120, "middle"], ["now", 240, "end"]].forEach(function (l) {
      var t = document.createElementNS(NS, "text");
      t.setAttribute("x", l[1]); t.setAttribute("y", 97); t.setAttribute("text-anchor", l[2]);
      t.textContent = l[0];
      svg.appendChild(t);
    });
    var label = document.createElementNS(NS, "text");
    label.setAttribute("x", 0); label.setAttribute("y", 8);
    label.textContent = "max " + max + " / h";
    svg.appendChild(label);
    $("chart").textContent = "";
    $("chart").appendChild(svg);
  }

  // Where the app's sessions live: per master on a Redis Cluster (its shards grouped by
  // the master that holds them), else the one server.
  function spread(stats) {
    var by = {};
    var order = [];
    (stats.shards || []).forEach(function (s) {
      var node = s.node || "";
      if (!(node in by)) { by[node] = { sessions: 0, users: 0, shards: 0 }; order.push(node); }
      by[node].sessions += s.sessions; by[node].users += s.users; by[node].shards += 1;
    });
    $("spread").textContent = "";
    var clustered = order.some(function (n) { return n !== ""; });
    $("spread-title").hidden = $("spread").hidden = !clustered;
    if (!clustered) return;
    order.sort();
    order.forEach(function (node) {
      var n = by[node];
      var share = stats.sessions ? Math.round(100 * n.sessions / stats.sessions) : 0;
      var li = el("li", (node || "master unknown") + " — " + n.sessions + " sessions (" + share +
        " %), " + n.users + " users, " + n.shards + " shards");
      li.dataset.node = node;
      li.dataset.sessions = n.sessions;
      $("spread").appendChild(li);
    });
  }

  function findUser(id) {
    var app = current;
    $("user-status").textContent = "Looking up " + id + "…";
    $("devices").textContent = "";
    $("kill-everywhere").hidden = true;
    return api("GET", "/" + enc(app) + "/soid/" + enc(id)).then(function (body) {
      var list = body.sessions || [];
      $("user-status").textContent = list.length === 1 ? "1 device signed in." :
        list.length + " devices signed in.";
      list.forEach(function (s) { $("devices").appendChild(device(app, id, s, list)); });
      $("kill-everywhere").hidden = list.length === 0;
      $("kill-everywhere").dataset.id = id;
    }).catch(function (e) { if (e.message !== "unauthorized") $("user-status").textContent = e.message; });
  }

  function agentOf(d) {
    if (!d) return null;
    var ua = d.ua || d.userAgent || d.user_agent || d.agent;
    return typeof ua === "string" ? ua : null;
  }

  function device(app, id, s, all) {
    var li = el("li", null, "device");
    var handle = s.handle || "";
    li.dataset.handle = handle;
    li.appendChild(el("h4", agentOf(s.d) || "Unknown device", ""));
    var dl = el("dl");
    stat(dl, "Device handle", handle.slice(0, 12) + (handle.length > 12 ? "…" : ""), "handle").className = "mono";
    stat(dl, "IP", s.ip);
    stat(dl, "Idle", ago(s.idle), "idle");
    stat(dl, "Signed in", s.created_ms ? new Date(s.created_ms).toLocaleString() : "–");
    li.appendChild(dl);
    var actions = el("div", null, "actions");
    var one = button("Sign out this device", "danger", "Sign out device " + handle.slice(0, 12));
    one.dataset.action = "kill-device";
    one.addEventListener("click", function () {
      act([handle], "Signed out device " + handle.slice(0, 12) + ".");
    });
    actions.appendChild(one);
    if (all.length > 1) {
      var others = button("Sign out all others", "secondary", "Keep device " + handle.slice(0, 12) + ", sign out the others");
      others.dataset.action = "kill-others";
      others.addEventListener("click", function () {
        var rest = all.map(function (x) { return x.handle; }).filter(function (h) { return h && h !== handle; });
        act(rest, "Signed out " + rest.length + " other device(s).");
      });
      actions.appendChild(others);
    }
    li.appendChild(actions);
    return li;

    // Each device by its handle (`killdevice`): the console never holds a token, so
    // "all others" is the other handles, one by one.
    function act(handles, done) {
      var buttons = $("devices").querySelectorAll("button");
      buttons.forEach(function (b) { b.disabled = true; });
      var chain = Promise.resolve(0);
      handles.forEach(function (h) {
        chain = chain.then(function (n) {
          return api("DELETE", "/" + enc(app) + "/killdevice/" + enc(id) + "/" + enc(h))
            .then(function (body) { return n + (body.kill || 0); });
        });
      });
      chain.then(function () {
        refresh();
        return findUser(id);
      }).then(function () {
        $("user-status").textContent = done + " " + $("user-status").textContent;
        $("user-id").focus();
      }).catch(function (e) {
        if (e.message !== "unauthorized") $("user-status").textContent = e.message;
        buttons.forEach(function (b) { b.disabled = false; });
      });
    }
  }

  // The store's nodes from /health (with the token it lists each node, and on a cluster
  // each master: where the sessions are spread, and which of them answers).
  function loadStore() {
    fetch("/health", { headers: { Authorization: "Bearer " + token() }, cache: "no-store" })
      .then(function (r) { return r.json(); })
      .then(function (h) {
        var nodes = h.nodes || [];
        var masters = nodes.filter(function (n) { return !n.replica; }).length;
        $("store-status").textContent = "Store: " + h.store + " — " + h.status +
          (masters > 1 ? ", sessions spread over " + masters + " masters" : "") +
          (h.message ? " (" + h.message + ")" : "") +
          (h.migration ? "; migration, cut-over " + h.migration.cutover : "");
        $("nodes").textContent = "";
        var errors = {};
        (h.unreachable || []).forEach(function (n) { errors[n.node] = n.error; });
        nodes.forEach(function (n) {
          var li = el("li", (n.replica ? "replica " : "master ") + n.node + " — " +
            (n.ok ? "answers" : "does not answer" + (errors[n.node] ? ": " + errors[n.node] : "")));
          li.dataset.node = n.node;
          $("nodes").appendChild(li);
        });
      }).catch(function () { $("store-status").textContent = "Store: no answer"; });
  }

  // Whether events are on (a one-event JSON page, or 404 eventsOff).
  function checkEvents(app) {
    $("events-toggle").hidden = true;
    $("events-status").textContent = "";
    api("GET", "/" + enc(app) + "/events?count=1").then(function () {
      $("events-toggle").hidden = false;
      $("events-toggle").textContent = "Start the live feed";
      $("events-status").textContent = "Session events are on.";
    }).catch(function (e) {
      $("events-status").textContent = e.code === "eventsOff" ?
        "Session events are off on this server (RS_EVENTS)." : e.message;
    });
  }

  // The live feed reads the Server-Sent Events route with fetch(), not EventSource: fetch
  // sends the token in the Authorization header, so it never appears in a URL (logs,
  // history, Referer) and no second, query-string credential exists.
  function startFeed(app) {
    var controller = new AbortController();
    feed = controller;
    $("events-toggle").textContent = "Stop the live feed";
    $("events-status").textContent = "Connecting…";
    fetch("/" + enc(app) + "/events", {
      headers: { Authorization: "Bearer " + token(), Accept: "text/event-stream" },
      cache: "no-store", signal: controller.signal
    }).then(function (r) {
      if (!r.ok || !r.body) throw new Error("HTTP " + r.status);
      // The server fixed the stream's start before it answered: from here on no event is missed.
      if (feed === controller) $("events-status").textContent = "Live: new events appear below.";
      var reader = r.body.getReader();
      var decoder = new TextDecoder();
      var buffer = "";
      function pump() {
        return reader.read().then(function (chunk) {
          if (chunk.done) throw new Error("the stream ended");
          buffer += decoder.decode(chunk.value, { stream: true }).replace(/\r\n?/g, "\n");
          var cut;
          while ((cut = buffer.indexOf("\n\n")) >= 0) {
            var block = buffer.slice(0, cut);
            buffer = buffer.slice(cut + 2);
            var data = block.split("\n").filter(function (l) { return l.indexOf("data:") === 0; })
              .map(function (l) { return l.slice(5).replace(/^ /, ""); }).join("\n");
            if (data) { try { showEvent(JSON.parse(data)); } catch (e) { /* not an event */ } }
          }
          return pump();
        });
      }
      return pump();
    }).catch(function (e) {
      if (feed === controller) {
        feed = null;
        $("events-toggle").textContent = "Start the live feed";
        $("events-status").textContent = controller.signal.aborted ? "Stopped." : "The feed stopped: " + e.message;
      }
    });
  }
  function stopFeed() {
    if (feed) { var f = feed; feed = null; f.abort(); }
    $("events-toggle").textContent = "Start the live feed";
  }
  function showEvent(ev) {
    var when = new Date(ev.at_ms).toLocaleTimeString();
    var what = ev.type + (ev.reason ? " (" + ev.reason + ")" : "");
    var li = el("li", when + " — " + what + " — user " + ev.id + ", device " +
      String(ev.device || "").slice(0, 12) + (ev.ip ? ", " + ev.ip : ""));
    var list = $("events");
    list.insertBefore(li, list.firstChild);
    while (list.children.length > 200) list.removeChild(list.lastChild);
  }

  $("login-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var t = $("token").value.trim();
    if (!t) { $("login-error").textContent = "Enter the token."; $("token").focus(); return; }
    sessionStorage.setItem(KEY, t);
    $("token").value = "";
    $("login-error").textContent = "";
    start();
  });
  $("refresh").addEventListener("click", refresh);
  $("forget").addEventListener("click", function () { signOut("Token forgotten."); });
  $("open-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var app = $("open-app").value.trim();
    if (app) openApp(app);
  });
  $("user-form").addEventListener("submit", function (e) {
    e.preventDefault();
    var id = $("user-id").value.trim();
    if (id && current) findUser(id);
  });
  $("kill-everywhere").addEventListener("click", function () {
    var id = this.dataset.id, app = current;
    api("DELETE", "/" + enc(app) + "/killsoid/" + enc(id)).then(function (body) {
      refresh();
      return findUser(id).then(function () {
        $("user-status").textContent = "Signed out " + body.kill + " session(s) everywhere. " + $("user-status").textContent;
      });
    }).catch(function (e) { if (e.message !== "unauthorized") $("user-status").textContent = e.message; });
  });
  $("events-toggle").addEventListener("click", function () {
    if (feed) { stopFeed(); $("events-status").textContent = "Stopped."; } else if (current) startFeed(current);
  });

  if (token()) start(); else $("token").focus();
})();
