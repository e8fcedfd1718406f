// Redraws the page from status.json every data-refresh-ms, laying it out
// exactly as page.html does. Text goes in through textContent only.
(function () {
  "use strict";
  var every = Number(document.body.dataset.refreshMs) || 2000;
  // csrf is set when logged in: the buttons are drawn, and their API
  // calls carry it, since the session cookie alone is refused.
  var csrf = document.body.dataset.csrf || "";
  var renders = 0;
  var units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined) e.textContent = String(text);
    return e;
  }
  function bytes(n) {
    if (n < 1024) return n + " B";
    var i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return n.toFixed(1) + " " + units[i];
  }
  function latency(ms) { return ms ? ms.toFixed(1) + " ms" : "\u2013"; }
  function clock(iso) {
    var d = new Date(iso);
    return isNaN(d) ? iso : d.toTimeString().slice(0, 8);
  }

  function counters(l) {
    var cs = [
      ["Active", l.active], ["Total", l.new],
      ["Bytes in", bytes(l.bytes_in)], ["Bytes out", bytes(l.bytes_out)],
      ["Bandwidth", l.bandwidth_mbps > 0 ? l.bandwidth_mbps + " Mbps" : "uncapped"],
      ["Refused by ACL", l.refused_acl], ["Connect failures", l.connect_failures],
      ["No backend", l.no_backend], ["Dropped", l.dropped], ["Drained", l.drained],
      ["Idle resets", l.idle_resets]
    ];
    var r = l.requests;
    if (r) {
      cs.push(["1xx", r["1xx"]], ["2xx", r["2xx"]], ["3xx", r["3xx"]], ["4xx", r["4xx"]], ["5xx", r["5xx"]],
        ["Upstream latency", latency(l.upstream_latency_ms)]);
    }
    return cs;
  }
  function columns(l) {
    var cols = ["Backend", "Address", "Weight", "Health", "Active", "Total", "Bytes in", "Bytes out", "Connect failures"];
    if (l.requests) cols.push("1xx", "2xx", "3xx", "4xx", "5xx", "Upstream");
    return cols;
  }
  function cells(b, web) {
    var weight = ["\u2013", "weight"], health = ["not in group", "health gone"];
    if (b.member) {
      weight[0] = String(b.weight) + (b.state && b.state !== "ready" ? " " + b.state : "") + (b.standby ? " standby" : "");
      health = b.healthy ? ["healthy", "health ok"] : ["unhealthy", "health bad"];
    }
    var cs = [[b.id, "id"], [b.addr || "", "addr"], weight, health,
      [b.active, "num"], [b.new, "num"], [bytes(b.bytes_in), "num"], [bytes(b.bytes_out), "num"],
      [b.connect_failures, "num"]];
    if (web) {
      var r = b.requests || {};
      ["1xx", "2xx", "3xx", "4xx", "5xx"].forEach(function (c) { cs.push([r[c] || 0, "num"]); });
      cs.push([latency(b.upstream_latency_ms), "num"]);
    }
    return cs;
  }

  function configLine(c) {
    var s = "Config " + c.source + " \u00b7 revision " + c.revision + " \u00b7 " +
      (c.connected ? "connected" : "disconnected since " + clock(c.since));
    if (c.seen > c.revision) s += " \u00b7 revision " + c.seen + " refused";
    if (c.error) s += " \u00b7 last error " + clock(c.error_time) + ": " + c.error;
    return s;
  }

  // stamp is a date and time in UTC, for times that may be days old.
  function stamp(iso) {
    var d = new Date(iso);
    return isNaN(d) ? iso : d.toISOString().slice(0, 19).replace("T", " ") + " UTC";
  }
  function processLine(p) {
    var s = "Process " + p.pid + " \u00b7 generation " + p.generation + " \u00b7 started " + stamp(p.started) +
      " \u00b7 config version ";
    if (!p.config_version) return s + "none";
    s += p.config_version;
    if (p.config_applied) s += " applied " + stamp(p.config_applied);
    return s;
  }

  function note(text, bad) {
    var n = document.getElementById("note");
    n.textContent = text;
    n.hidden = false;
    n.classList.toggle("bad", !!bad);
  }

  // call POSTs body to the runtime API, shows the change or the refusal,
  // and redraws at once.
  function call(path, body) {
    fetch(path, {
      method: "POST", cache: "no-store", credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf },
      body: JSON.stringify(body || {})
    }).then(function (r) {
      return r.text().then(function (t) {
        if (!r.ok) throw new Error("HTTP " + r.status + ": " + t.trim());
        return JSON.parse(t);
      });
    }).then(function (c) { note(c.what + ": " + c.before + " \u2192 " + c.after); },
      function (e) { note(e.message, true); })
      .finally(load);
  }
  function button(text, path, body) {
    var b = el("button", "act", text);
    b.type = "button";
    b.dataset.act = text;
    b.addEventListener("click", function () { call(path, body); });
    return b;
  }
  function backendActions(l, b) {
    var path = "api/listeners/" + encodeURIComponent(l.name) + "/backends/" + encodeURIComponent(b.id) + "/";
    var td = el("td", "actions");
    if (!b.member) return td;
    ["ready", "drain", "maint"].forEach(function (st) {
      td.append(button(st, path + "state", { state: st }), " ");
    });
    var w = el("input", "weight");
    w.type = "number"; w.min = "0"; w.max = "100"; w.placeholder = "weight";
    var set = el("button", "act", "set weight");
    set.type = "button";
    set.dataset.act = "weight";
    set.addEventListener("click", function () {
      if (w.value === "") { note("set weight: enter 0\u2013100", true); return; }
      call(path + "weight", { weight: Number(w.value) });
    });
    td.append(w, set);
    return td;
  }

  function section(l) {
    var s = el("section", "listener");
    s.dataset.listener = l.name;
    var h = el("h2", "", l.name + " ");
    h.append(el("span", "proto", l.protocol), " ", el("span", "port", ":" + l.port), " ",
      el("span", "state " + l.state, l.state));
    if (csrf) {
      var stop = l.state === "stopped" ? "start" : "stop";
      h.append(" ", button(stop, "api/listeners/" + encodeURIComponent(l.name) + "/" + stop));
    }
    s.append(h);

    var dl = el("dl", "counters");
    counters(l).forEach(function (c) {
      var d = el("div");
      d.append(el("dt", "", c[0]), el("dd", "", c[1]));
      dl.append(d);
    });
    s.append(dl);

    var t = el("table", "backends"), head = el("tr"), body = el("tbody");
    var cols = columns(l);
    if (csrf) cols.push("Actions");
    cols.forEach(function (c) { head.append(el("th", "", c)); });
    t.append(el("thead"), body);
    t.tHead.append(head);
    (l.backends || []).forEach(function (b) {
      var tr = el("tr", "backend");
      tr.dataset.backend = b.id;
      cells(b, l.requests).forEach(function (c) { tr.append(el("td", c[1], c[0])); });
      if (csrf) tr.append(backendActions(l, b));
      body.append(tr);
    });
    if (!l.backends || l.backends.length === 0) {
      var td = el("td", "none", "no backends");
      td.colSpan = cols.length;
      var empty = el("tr");
      empty.append(td);
      body.append(empty);
    }
    s.append(t);
    return s;
  }

  function render(st) {
    // Not while the operator types a weight: the redraw would wipe it.
    var focus = document.activeElement;
    if (focus && focus.tagName === "INPUT" && document.getElementById("listeners").contains(focus)) return;
    document.getElementById("instance").textContent = st.instance;
    document.getElementById("address").textContent = st.address || "none";
    var up = document.getElementById("updated");
    up.textContent = "as of " + clock(st.time);
    up.classList.remove("stale");
    var cf = document.getElementById("config");
    cf.hidden = !st.config;
    if (st.config) cf.textContent = configLine(st.config);
    var pr = document.getElementById("process");
    pr.hidden = !st.process;
    if (st.process) pr.textContent = processLine(st.process);
    var ls = st.listeners || [];
    var main = document.getElementById("listeners");
    if (ls.length === 0) main.replaceChildren(el("p", "none", "No listeners."));
    else main.replaceChildren.apply(main, ls.map(section));
    document.body.dataset.renders = String(++renders);
  }

  function stale(why) {
    var up = document.getElementById("updated");
    up.textContent = "status.json unavailable (" + why + ")";
    up.classList.add("stale");
  }

  function load() {
    return fetch("status.json", { cache: "no-store" })
      .then(function (r) {
        if (!r.ok) throw new Error("HTTP " + r.status);
        return r.json();
      })
      .then(render, function (e) { stale(e.message); });
  }
  function tick() {
    load().finally(function () { setTimeout(tick, every); });
  }
  tick();
})();
