// snowmelt live dashboard: polls /dashboard/data and renders every panel (plain DOM + inline SVG).
// When the server asks for its access token (up.api_token), a form takes it; it is kept in sessionStorage
// and sent as "Authorization: Bearer <token>" with every data request.
(function () {
  "use strict";
  var DATA_URL = "/dashboard/data";
  var SVG_NS = "http://www.w3.org/2000/svg";
  var pollSeconds = 5;
  var lastData = null;
  var numberFormat = new Intl.NumberFormat("en-US");

  function el(tag, attrs, children) {
    var node = document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, attrs[k]); });
    (children || []).forEach(function (c) {
      node.appendChild(typeof c === "string" ? document.createTextNode(c) : c);
    });
    return node;
  }

  function svg(tag, attrs, text) {
    var node = document.createElementNS(SVG_NS, tag);
    Object.keys(attrs || {}).forEach(function (k) { node.setAttribute(k, String(attrs[k])); });
    if (text !== undefined) { node.textContent = text; }
    return node;
  }

  function num(v) { var n = Number(v); return isFinite(n) ? n : 0; }
  function fmt(v) { return numberFormat.format(num(v)); }
  function isNumeric(v) { return typeof v === "number" || (typeof v === "string" && /^\d+$/.test(v)); }

  function panelNode(name) { return document.querySelector('[data-panel="' + name + '"]'); }

  function showError(node, panel) {
    var box = node.querySelector(".error");
    if (box) { box.textContent = panel && panel.error ? "query failed: " + panel.error : ""; }
    // where the panel's model tables are missing, the server answers from the events and says so
    var note = node.querySelector(".note");
    if (note) { note.textContent = panel && panel.note ? panel.note : ""; }
  }

  // Single-row panels: every [data-value=column] gets the row's value.
  function renderValues(name, panel) {
    var node = panelNode(name);
    if (!node) { return; }
    var row = (panel && panel.rows && panel.rows[0]) || {};
    node.querySelectorAll("[data-value]").forEach(function (cell) {
      var v = row[cell.getAttribute("data-value")];
      cell.textContent = v === undefined || v === "" ? "–" : (isNumeric(v) ? fmt(v) : String(v));
    });
  }

  function columnsOf(node) {
    return node.getAttribute("data-columns").split(",").map(function (spec) {
      var parts = spec.split(":");
      return { key: parts[0], title: parts[1] };
    });
  }

  function table(columns, rows) {
    var numeric = columns.map(function (c) {
      return rows.length > 0 && rows.every(function (r) { return isNumeric(r[c.key]); });
    });
    // the first numeric column draws a bar behind the label, scaled to the largest value
    var barIndex = numeric.indexOf(true);
    var max = 1;
    if (barIndex >= 0) {
      rows.forEach(function (r) { max = Math.max(max, num(r[columns[barIndex].key])); });
    }
    var head = el("tr", {}, columns.map(function (c, i) {
      return el("th", numeric[i] ? { "class": "num" } : {}, [c.title]);
    }));
    var body = rows.map(function (r) {
      return el("tr", {}, columns.map(function (c, i) {
        var v = r[c.key];
        var text = v === null || v === undefined ? "" : (numeric[i] ? fmt(v) : String(v));
        var attrs = { title: text };
        if (numeric[i]) { attrs["class"] = "num"; }
        if (i === 0 && barIndex >= 0) {
          attrs["class"] = "first";
          attrs.style = "background-size: " + Math.round(100 * num(r[columns[barIndex].key]) / max) + "% 100%";
        }
        return el("td", attrs, [text]);
      }));
    });
    return el("table", {}, [el("thead", {}, [head]), el("tbody", {}, body)]);
  }

  function renderTable(name, panel) {
    var node = panelNode(name);
    if (!node) { return; }
    var body = node.querySelector(".body");
    var rows = (panel && panel.rows) || [];
    body.textContent = "";
    if (rows.length === 0) {
      body.appendChild(el("div", { "class": "empty" }, [panel && panel.error ? "no data" : "nothing yet"]));
    } else {
      body.appendChild(table(columnsOf(node), rows));
    }
    showError(node, panel);
  }

  function renderDevices(panel) {
    var node = panelNode("devices");
    if (!node) { return; }
    var body = node.querySelector(".body");
    var rows = (panel && panel.rows) || [];
    body.textContent = "";
    if (rows.length === 0) {
      body.appendChild(el("div", { "class": "empty" }, [panel && panel.error ? "no data" : "nothing yet"]));
    }
    var facets = el("div", { "class": "facets" });
    body.appendChild(facets);
    [["device", "Device type"], ["os", "Operating system"], ["browser", "Browser"]].forEach(function (f) {
      var facetRows = rows.filter(function (r) { return r.facet === f[0]; });
      if (facetRows.length === 0) { return; }
      var block = el("div", { "data-facet": f[0] }, [el("div", { "class": "facet" }, [f[1]])]);
      block.appendChild(table(columnsOf(node), facetRows));
      facets.appendChild(block);
    });
    showError(node, panel);
  }

  function pad(n) { return (n < 10 ? "0" : "") + n; }

  // Stacked bars, good below bad, one per minute; y axis from 0 to a round maximum.
  function renderChart(panel) {
    var node = panelNode("events_per_minute");
    if (!node) { return; }
    var box = node.querySelector(".chart");
    var rows = (panel && panel.rows) || [];
    var width = Math.max(320, box.clientWidth || 800), height = 180;
    var left = 44, right = 8, top = 8, bottom = 22;
    var plotW = width - left - right, plotH = height - top - bottom;
    var max = 0;
    rows.forEach(function (r) { max = Math.max(max, num(r.good) + num(r.bad)); });
    var step = Math.pow(10, Math.floor(Math.log10(Math.max(max, 1))));
    var yMax = Math.max(4, Math.ceil(Math.max(max, 1) / step) * step);
    var chart = svg("svg", { width: width, height: height, viewBox: "0 0 " + width + " " + height,
                             role: "img", "aria-label": "events per minute" });
    [0, 0.5, 1].forEach(function (f) {
      var y = top + plotH - f * plotH;
      chart.appendChild(svg("line", { x1: left, x2: width - right, y1: y, y2: y, "class": "axis" }));
      chart.appendChild(svg("text", { x: left - 6, y: y + 3, "text-anchor": "end" }, fmt(Math.round(yMax * f))));
    });
    var slot = rows.length ? plotW / rows.length : plotW;
    var barW = Math.max(1, slot * 0.75);
    rows.forEach(function (r, i) {
      var x = left + i * slot + (slot - barW) / 2;
      var good = num(r.good), bad = num(r.bad);
      var hGood = plotH * good / yMax, hBad = plotH * bad / yMax;
      var minute = String(r.minute || "");
      var g = svg("g", { "data-minute": minute, "data-good": good, "data-bad": bad });
      g.appendChild(svg("title", {}, minute + " UTC: " + good + " good, " + bad + " bad"));
      if (good > 0) {
        g.appendChild(svg("rect", { x: x, y: top + plotH - hGood, width: barW, height: hGood, fill: "var(--good)" }));
      }
      if (bad > 0) {
        g.appendChild(svg("rect", { x: x, y: top + plotH - hGood - hBad, width: barW, height: hBad,
                                    fill: "var(--bad)" }));
      }
      chart.appendChild(g);
      if (i % 5 === 4 || i === rows.length - 1) {
        var label = minute.length >= 16 ? minute.slice(11, 16) : minute;
        chart.appendChild(svg("text", { x: x + barW / 2, y: height - 6, "text-anchor": "middle" }, label));
      }
    });
    box.textContent = "";
    box.appendChild(chart);
    showError(node, panel);
  }

  function render(data) {
    var panels = data.panels || {};
    renderValues("totals", panels.totals);
    renderValues("active", panels.active);
    renderChart(panels.events_per_minute);
    ["top_pages", "referrers", "campaigns", "countries", "bad_row_reasons"].forEach(function (name) {
      renderTable(name, panels[name]);
    });
    renderDevices(panels.devices);
  }

  function setStatus(text, stale) {
    var status = document.getElementById("status");
    status.textContent = text;
    status.className = stale ? "status stale" : "status";
  }

  // ---- access token: kept in sessionStorage (this tab only), sent as an Authorization header, never in a URL
  var TOKEN_KEY = "snowmelt.dashboard.token";
  var memoryToken = null;  // used when sessionStorage is unavailable

  function storedToken() {
    try {
      var token = window.sessionStorage.getItem(TOKEN_KEY);
      if (token) { return token; }
    } catch (e) { /* storage disabled: fall back to this page's memory */ }
    return memoryToken;
  }

  function storeToken(token) {
    memoryToken = token;
    try {
      if (token === null) { window.sessionStorage.removeItem(TOKEN_KEY); }
      else { window.sessionStorage.setItem(TOKEN_KEY, token); }
    } catch (e) { /* storage disabled: memoryToken holds it */ }
  }

  function byId(id) { return document.getElementById(id); }

  // What the refused part of the page shows: nothing, the token form, or a refusal the operator must fix.
  function showAccess(what, lead, text) {
    byId("access").hidden = what === null;
    byId("token-form").hidden = what !== "form";
    byId("refusal").hidden = what !== "refusal";
    if (what === "form") {
      byId("token-problem").textContent = text || "";
      byId("token").focus();
    } else if (what === "refusal") {
      byId("refusal-title").textContent = lead;
      byId("refusal-message").textContent = text;
    }
  }

  // A refusal's body: {"error": CODE, "message": TEXT}, or {} when the body is not that.
  function refusalOf(response) {
    return response.json().then(function (doc) {
      return doc && typeof doc === "object" ? doc : {};
    }, function () { return {}; });
  }

  // Reacts to a refused request: true when polling must wait for a token to be entered, false when it goes on,
  // undefined when the answer is not a refusal (a server error).
  function refused(status, doc) {
    var code = doc.error;
    var message = typeof doc.message === "string" ? doc.message : "";
    if (code === "token_required" || (status === 401 && !code)) {
      showAccess("form", "", "");
      setStatus("access token needed", true);
      return true;
    }
    if (code === "wrong_token") {
      storeToken(null);
      byId("forget-token").hidden = true;
      showAccess("form", "", "The token was refused: it is not this server's up.api_token. Enter it again.");
      setStatus("access token refused", true);
      return true;
    }
    if (code === "local_only") {
      showAccess("refusal", "This server shows its dashboard data only to browsers on its own machine, " +
                 "and no access token (up.api_token) is set for other machines.",
                 message || "To open it to other machines, the operator must set up.api_token.");
      setStatus("refused: local clients only", true);
      return false;
    }
    if (code === "host_not_allowed") {
      showAccess("refusal", "This server does not answer to the host name " + window.location.hostname + ".",
                 message || "The operator must add this name to api.public_hosts.");
      setStatus("refused: host name not allowed", true);
      return false;
    }
    if (status === 401 || status === 403) {  // refused by something that does not say why (a proxy in front?)
      showAccess("refusal", "The dashboard's data was refused (HTTP " + status + ") without the reason " +
                 "snowmelt gives with its refusals: a proxy or server between this browser and snowmelt up " +
                 "may be refusing it.", message);
      setStatus("refused (HTTP " + status + ")", true);
      return false;
    }
    return undefined;
  }

  function show(data) {
    lastData = data;
    if (data.poll_seconds > 0) { pollSeconds = data.poll_seconds; }
    render(data);
    showAccess(null);
    byId("forget-token").hidden = !storedToken();
    var now = new Date();
    setStatus("updated " + pad(now.getHours()) + ":" + pad(now.getMinutes()) + ":" + pad(now.getSeconds()), false);
    document.body.setAttribute("data-updated", String(now.getTime()));
  }

  // One request at a time: pollNow() during a request polls again as soon as it ends.
  var timer = null, busy = false, again = false;

  function poll() {
    timer = null;
    busy = true;
    var waitForToken = false;
    var token = storedToken();
    var headers = token ? { "Authorization": "Bearer " + token } : {};
    fetch(DATA_URL, { cache: "no-store", credentials: "same-origin", headers: headers })
      .then(function (response) {
        if (response.ok) { return response.json().then(show); }
        return refusalOf(response).then(function (doc) {
          var outcome = refused(response.status, doc);
          if (outcome === undefined) {  // a server error: an earlier refusal no longer holds
            showAccess(null);
            setStatus("the server answered HTTP " + response.status + ", retrying", true);
          }
          waitForToken = outcome === true;
        });
      })
      .catch(function (err) {
        // keep the last numbers on screen; say that they are stale
        setStatus("cannot reach the server (" + err.message + "), retrying", true);
      })
      .then(function () {
        busy = false;
        if (again) { again = false; poll(); }
        else if (!waitForToken) { timer = window.setTimeout(poll, pollSeconds * 1000); }
      });
  }

  function pollNow() {
    if (busy) { again = true; return; }
    if (timer !== null) { window.clearTimeout(timer); }
    poll();
  }

  byId("token-form").addEventListener("submit", function (event) {
    event.preventDefault();
    var input = byId("token");
    var token = input.value.trim();
    input.value = "";
    if (!token) { showAccess("form", "", "Enter the token."); return; }
    if (!/^[\x20-\x7e]+$/.test(token)) {
      showAccess("form", "", "A token can only hold printable ASCII characters.");
      return;
    }
    storeToken(token);
    showAccess(null);
    setStatus("checking the token…", false);
    pollNow();
  });

  byId("forget-token").addEventListener("click", function () {
    storeToken(null);
    byId("forget-token").hidden = true;
    pollNow();
  });

  window.addEventListener("resize", function () {
    if (lastData) { renderChart((lastData.panels || {}).events_per_minute); }
  });
  poll();
}());
