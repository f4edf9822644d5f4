/// The live status page (`GET /`): one self-contained HTML page, no
/// external assets. It reads `status.json` (agents, capacity, the last
/// actions) and follows `status/events` (server-sent events): each event is
/// listed as it comes and refreshes the figures; a poll every 5 s keeps the
/// usage current between events. Relative URLs, so it works on the API
/// socket (behind a proxy) and on `--metrics-address` alike.
///
/// Colours (the tests count their pixels): usage #1f77b4, soft limit
/// #e69f00, hard limit #d62728.
public enum StatusPage {
    public static let usageColour = "#1f77b4"
    public static let softColour = "#e69f00"
    public static let hardColour = "#d62728"

    public static let html = #"""
        <!doctype html>
        <html lang="en">
        <head>
        <meta charset="utf-8">
        <meta name="viewport" content="width=device-width, initial-scale=1">
        <title>Corral status</title>
        <style>
        body { font: 14px/1.4 "DejaVu Sans", system-ui, sans-serif; margin: 16px; color: #222; background: #fff; }
        header { display: flex; gap: 16px; align-items: baseline; }
        h1 { font-size: 20px; margin: 0; }
        h2 { font-size: 16px; margin: 20px 0 6px; }
        #live { font-size: 12px; color: #666; }
        #live.on { color: #2a7a2a; }
        table { border-collapse: collapse; width: 100%; }
        th, td { text-align: left; padding: 3px 8px 3px 0; border-bottom: 1px solid #eee; vertical-align: middle; white-space: nowrap; }
        th { font-weight: 600; color: #555; font-size: 12px; }
        .bar { position: relative; display: inline-block; width: 160px; height: 12px; background: #f2f2f2; vertical-align: middle;
               box-sizing: border-box; border-right: 3px solid #d62728; }
        .bar .used { position: absolute; left: 0; top: 0; bottom: 0; background: #1f77b4; }
        .bar .soft { position: absolute; top: -3px; bottom: -3px; width: 3px; background: #e69f00; }
        .figure { font-size: 12px; color: #444; margin-left: 6px; }
        .state-suspended td.state { color: #b35900; font-weight: 600; }
        .state-queued td.state { color: #666; }
        .degradation-emergency td.degradation, .degradation-aggressive td.degradation { color: #d62728; font-weight: 600; }
        ol { margin: 0; padding-left: 20px; font-size: 12px; }
        .failed { color: #d62728; }
        #empty { color: #666; }
        </style>
        </head>
        <body>
        <header><h1>Corral</h1><span id="meta">loading…</span><span id="live">connecting…</span></header>
        <h2>Host capacity</h2>
        <table id="capacity"><thead><tr><th>resource</th><th>in use / allocatable</th><th>host</th><th>reserved</th>
        <th>committed (hard)</th><th>committed (soft)</th><th>available</th></tr></thead><tbody></tbody></table>
        <h2>Agents</h2>
        <table id="agents"><thead><tr><th>agent</th><th>group</th><th>state</th><th>priority</th><th>degradation</th><th>step</th>
        <th>memory</th><th>CPU</th><th>processes</th></tr></thead><tbody></tbody></table>
        <p id="empty" hidden>No agents.</p>
        <h2>Last actions</h2>
        <ol id="actions"></ol>
        <h2>Live events</h2>
        <ol id="stream"></ol>
        <script>
        "use strict";
        const units = {
          memory: v => { const u = ["B", "KiB", "MiB", "GiB", "TiB"]; let i = 0; while (Math.abs(v) >= 1024 && i < u.length - 1) { v /= 1024; i++; }
                         return (i ? v.toFixed(1) : v.toFixed(0)) + " " + u[i]; },
          cpu: v => v.toFixed(0) + "%",
          processes: v => v.toFixed(0),
        };
        function el(tag, attrs, ...children) {
          const node = document.createElement(tag);
          for (const [k, v] of Object.entries(attrs || {})) { if (v !== undefined && v !== null) node.setAttribute(k, v); }
          for (const c of children) node.append(c);
          return node;
        }
        function bar(resource, amount) {
          const cell = el("td", { class: "usage " + resource, "data-resource": resource,
            "data-used": amount.used ?? "", "data-soft": amount.soft ?? "", "data-hard": amount.hard ?? "" });
          if (amount.used === undefined || amount.used === null) { cell.append("–"); return cell; }
          const limit = amount.hard > 0 ? amount.hard : (amount.soft > 0 ? amount.soft : 0);
          const fmt = units[resource];
          const text = fmt(amount.used) + (amount.soft > 0 ? " · soft " + fmt(amount.soft) : "") + (amount.hard > 0 ? " · hard " + fmt(amount.hard) : "");
          if (limit > 0) {
            const scale = Math.max(limit, amount.used);
            const b = el("span", { class: "bar", title: text });
            b.append(el("span", { class: "used", style: "width:" + (100 * amount.used / scale).toFixed(2) + "%" }));
            if (amount.soft > 0) b.append(el("span", { class: "soft", style: "left:calc(" + (100 * amount.soft / scale).toFixed(2) + "% - 1px)" }));
            cell.append(b);
          }
          cell.append(el("span", { class: "figure" }, text));
          return cell;
        }
        let loaded = false;
        let cause = "load";
        function render(data) {
          document.getElementById("meta").textContent = "corrald " + data.version + " · " + data.at;
          const body = document.querySelector("#agents tbody");
          const before = new Set([...body.querySelectorAll("tr.agent")].map(r => r.dataset.agent));
          const arrived = {};
          for (const r of body.querySelectorAll("tr.agent")) arrived[r.dataset.agent] = r.dataset.arrived;
          body.replaceChildren();
          for (const a of data.agents) {
            const row = el("tr", { class: "agent state-" + a.state + " degradation-" + a.degradation, "data-agent": a.id, "data-group": a.group,
              "data-state": a.state, "data-arrived": before.has(a.id) ? arrived[a.id] : (loaded ? cause : "load") });
            row.append(el("td", { class: "id" }, a.id), el("td", { class: "group" }, a.group),
              el("td", { class: "state" }, a.state + (a.queue_position ? " #" + a.queue_position : "")),
              el("td", { class: "priority" }, String(a.priority)), el("td", { class: "degradation" }, a.degradation),
              el("td", { class: "step" }, String(a.escalation_step)),
              bar("memory", a.memory), bar("cpu", a.cpu), bar("processes", a.processes));
            body.append(row);
          }
          document.getElementById("empty").hidden = data.agents.length > 0;
          const cap = document.querySelector("#capacity tbody");
          cap.replaceChildren();
          for (const line of data.capacity.resources) {
            const fmt = units[line.resource]; if (!fmt) continue;
            const row = el("tr", { class: "resource", "data-resource": line.resource });
            row.append(el("td", {}, line.resource), bar(line.resource, { used: line.used, hard: line.allocatable }),
              el("td", {}, fmt(line.host)), el("td", {}, fmt(line.reserved)), el("td", {}, fmt(line.committed_hard)),
              el("td", {}, fmt(line.committed_soft)), el("td", {}, fmt(line.available)));
            cap.append(row);
          }
          const actions = document.getElementById("actions");
          actions.replaceChildren(...data.actions.map(x => el("li", { class: x.outcome, "data-sequence": x.sequence },
            x.at + " " + (x.agent || "") + ": " + x.action + " (" + x.resource + ") " + x.outcome)));
          loaded = true;
          document.body.dataset.renders = String(Number(document.body.dataset.renders || 0) + 1);
        }
        async function refresh(why) {
          try {
            const response = await fetch("status.json", { cache: "no-store" });
            if (!response.ok) throw new Error("HTTP " + response.status);
            cause = why;
            render(await response.json());
          } catch (e) {
            document.getElementById("meta").textContent = "cannot read status.json: " + e.message;
          }
        }
        let pending = null;
        function soon() { if (pending) return; pending = setTimeout(() => { pending = null; refresh("stream"); }, 200); }
        const live = document.getElementById("live");
        const stream = document.getElementById("stream");
        const source = new EventSource("status/events");
        source.onopen = () => { live.textContent = "live"; live.className = "on"; };
        source.onerror = () => { live.textContent = "reconnecting…"; live.className = ""; };
        source.onmessage = message => {
          const e = JSON.parse(message.data);
          const text = "#" + e.sequence + " " + e.kind + (e.agent ? " " + e.agent : "") + (e.action ? ": " + e.action + " (" + e.resource + ") " + e.outcome : "");
          stream.prepend(el("li", { "data-sequence": e.sequence, "data-kind": e.kind }, text));
          while (stream.children.length > 50) stream.lastChild.remove();
          document.body.dataset.streamEvents = String(Number(document.body.dataset.streamEvents || 0) + 1);
          soon();
        };
        refresh("load");
        // ?poll=SECONDS: how often to read status.json besides the stream (default 5; 0: never).
        const params = new URLSearchParams(location.search);
        const asked = Number(params.get("poll"));
        const pollSeconds = params.has("poll") && Number.isFinite(asked) && asked >= 0 ? asked : 5;
        if (pollSeconds > 0) setInterval(() => refresh("poll"), pollSeconds * 1000);
        </script>
        </body>
        </html>
        """#
}
