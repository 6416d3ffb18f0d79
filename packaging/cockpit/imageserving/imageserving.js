/*
 * The Image Serving page. Every figure comes from 'ImageServing status --json --probe
 * --follow' (one JSON document per line: now, on every change of the stack's units, and
 * every 5 s), every action is 'ImageServing --no-ask-password VERB [NAME]' and every log line
 * 'ImageServing logs NAME', run through cockpit.spawn as the logged-in user. Nothing here
 * computes a state, a memory figure or an uptime of its own.
 */
"use strict";

const COMPONENTS = ["ps", "is", "svg"];
const TOOL = "ImageServing";

let following = null;
let logs = null;
let pendingStop = null;
let busy = false;

/* Cockpit's dark theme, as its own pages follow it (the shell's "shell:style" setting). */
function applyTheme(style) {
    const chosen = style || window.localStorage.getItem("shell:style") || "auto";
    const dark = chosen === "dark" ||
        (chosen === "auto" && window.matchMedia && window.matchMedia("(prefers-color-scheme: dark)").matches);
    document.documentElement.classList.toggle("pf-theme-dark", dark);
}
window.addEventListener("storage", event => {
    if (event.key === "shell:style")
        applyTheme();
});
window.addEventListener("cockpit-style", event => applyTheme(event.detail && event.detail.style));
if (window.matchMedia)
    window.matchMedia("(prefers-color-scheme: dark)").addEventListener("change", () => applyTheme());
applyTheme();

function el(tag, attrs, text) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {}))
        node.setAttribute(k, v);
    if (text !== undefined)
        node.textContent = text;
    return node;
}

function duration(seconds) {
    if (seconds === null || seconds === undefined)
        return "-";
    const d = Math.floor(seconds / 86400);
    const h = Math.floor(seconds % 86400 / 3600);
    const m = Math.floor(seconds % 3600 / 60);
    const s = seconds % 60;
    if (d > 0) return `${d}d ${h}h`;
    if (h > 0) return `${h}h ${m}m`;
    if (m > 0) return `${m}m ${s}s`;
    return `${s}s`;
}

function bytes(n) {
    if (n === null || n === undefined)
        return "-";
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let v = n;
    let i = 0;
    while (v >= 1024 && i < units.length - 1) {
        v /= 1024;
        i++;
    }
    return i === 0 ? `${v} B` : `${v.toFixed(1)} ${units[i]}`;
}

function stateText(u) {
    if (u.given_up)
        return `failed (${u.result}), gave up after ${u.restarts} restarts`;
    if (u.state === "failed")
        return `failed (${u.result})`;
    return `${u.state} (${u.sub_state})`;
}

function probeText(u) {
    if (!u.probe)
        return "-";
    return u.probe.ok ? `answers (${Math.round(u.probe.seconds * 1000)} ms)` : `no answer: ${u.probe.error}`;
}

/* An alert (role="alert"), as PatternFly draws one; the newest on top, at most three. A
 * success goes away by itself after 8 s; a failure stays until closed. */
function alert(kind, title, detail) {
    const box = document.getElementById("alerts");
    for (const old of box.querySelectorAll(".pf-m-success"))
        old.remove();
    const a = el("div", { class: `pf-c-alert pf-m-inline pf-m-${kind}`, role: "alert" });
    a.appendChild(el("p", { class: "pf-c-alert__title" }, title));
    if (detail)
        a.appendChild(el("div", { class: "pf-c-alert__description" }, detail));
    const close = el("button", { class: "pf-c-button pf-m-plain", type: "button", "aria-label": "Close" }, "×");
    close.addEventListener("click", () => a.remove());
    a.appendChild(el("div", { class: "pf-c-alert__action" })).appendChild(close);
    box.prepend(a);
    while (box.children.length > 3)
        box.lastChild.remove();
    if (kind === "success")
        window.setTimeout(() => a.remove(), 8000);
}

function buttons(name) {
    const cell = el("div", { class: "imageserving-actions" });
    for (const [action, label, style] of [["start", "Start", "secondary"], ["restart", "Restart", "secondary"],
        ["stop", "Stop", "danger"], ["logs", "Logs", "link"]]) {
        const b = el("button", { class: `pf-c-button pf-m-${style}`, type: "button", "data-action": action }, label);
        b.addEventListener("click", () => act(action, name));
        cell.appendChild(b);
    }
    return cell;
}

const LABELS = ["Component", "State", "PID", "Uptime", "RSS", "Cgroup memory", "Processes", "Restarts", "Probe"];

/* Each component's row is made once and updated in place: a button under the pointer stays
 * where it is while the figures change. */
function row(name) {
    let tr = document.querySelector(`tr[data-component='${name}']`);
    if (tr)
        return tr;
    tr = el("tr", { "data-component": name, "data-pid": "" });
    for (const label of LABELS)
        tr.appendChild(el("td", { "data-label": label }));
    const actions = el("td", { class: "imageserving-row-actions", "data-label": "Actions" });
    actions.appendChild(buttons(name));
    tr.appendChild(actions);
    document.getElementById("components").appendChild(tr);
    return tr;
}

function update(u) {
    const tr = row(u.name);
    tr.setAttribute("data-pid", u.pid || "");
    const texts = [
        `${u.name} (${u.title})`,
        stateText(u) + (u.socket ? `; socket ${u.socket.state} ${u.socket.listen.join(" ")}` : ""),
        u.pid || "-",
        duration(u.uptime_seconds),
        bytes(u.memory.rss_bytes) + (u.memory.limit_bytes ? ` / ${bytes(u.memory.limit_bytes)}` : ""),
        bytes(u.memory.cgroup_bytes),
        String(u.processes),
        String(u.restarts),
        probeText(u),
    ];
    texts.forEach((text, i) => {
        const td = tr.children[i];
        if (td.textContent !== String(text))
            td.textContent = text;
    });
    const state = tr.children[1];
    state.classList.add("imageserving-state");
    state.setAttribute("data-state", u.state);
}

function render(doc) {
    if (doc.error) {
        alert("danger", "The status of Image Serving cannot be read", doc.error);
        return;
    }
    const sup = doc.supervisor;
    const card = document.querySelector("[data-component=supervisor]");
    card.setAttribute("data-pid", sup.pid || "");
    const state = card.querySelector("[data-field=state]");
    state.textContent = stateText(sup);
    state.setAttribute("data-state", sup.state);
    card.querySelector("[data-field=detail]").textContent = sup.running
        ? `pid ${sup.pid}, up ${duration(sup.uptime_seconds)}, rss ${bytes(sup.memory.rss_bytes)}`
        : "";
    card.querySelector("[data-field=message]").textContent = doc.message || sup.status_text || "";
    for (const u of doc.components.filter(u => COMPONENTS.includes(u.name)))
        update(u);
    for (const b of document.querySelectorAll("button[data-action]"))
        b.disabled = busy && b.getAttribute("data-action") !== "logs" && b.getAttribute("data-action") !== "cancel";
}

/* Follow the status: one document per line. When the tool ends (the manager restarted, the
 * bus went away), say so and start it again after 5 s. */
function follow() {
    let buffer = "";
    following = cockpit.spawn([TOOL, "status", "--json", "--probe", "--follow"], { err: "message" });
    following.stream(chunk => {
        buffer += chunk;
        let nl;
        while ((nl = buffer.indexOf("\n")) >= 0) {
            const line = buffer.slice(0, nl);
            buffer = buffer.slice(nl + 1);
            if (!line.trim())
                continue;
            try {
                render(JSON.parse(line));
            } catch (e) {
                alert("danger", "ImageServing printed something that is not its status", line.slice(0, 200));
            }
        }
    });
    following.catch(ex => {
        if (ex && ex.problem === "not-found")
            alert("danger", "ImageServing is not installed on this host", "Install the imageserving package.");
        else if (ex && ex.problem !== "terminated")
            window.setTimeout(follow, 5000);
    });
}

function describe(verb, name) {
    const what = name ? name : "Image Serving";
    return { start: `Start ${what}`, restart: `Restart ${what}`, stop: `Stop ${what}` }[verb];
}

/* Run one command of the tool; what it prints on failure becomes an alert. */
function run(verb, name) {
    busy = true;
    for (const b of document.querySelectorAll("button[data-action]"))
        if (b.getAttribute("data-action") !== "logs")
            b.disabled = true;
    const args = [TOOL, "--no-ask-password", verb].concat(name ? [name] : []);
    cockpit.spawn(args, { err: "message" })
        .then(out => alert("success", `${describe(verb, name)}: done`, out.trim()))
        .catch(ex => {
            const said = String((ex && ex.message) || ex).trim();
            if (ex.exit_status === 4)
                alert("danger", `${describe(verb, name)}: not allowed`,
                      "Only root and members of the group imageserving-admin may start, stop or restart Image Serving; " +
                      "nothing was changed. " + said);
            else
                alert("danger", `${describe(verb, name)} failed`, said || String(ex));
        })
        .finally(() => {
            busy = false;
            for (const b of document.querySelectorAll("button[data-action]"))
                b.disabled = false;
        });
}

function act(action, name) {
    if (action === "logs")
        return showLogs(name);
    if (action === "stop") {
        pendingStop = name;
        document.getElementById("confirm-text").textContent = name
            ? `Stop ${name}? It stays stopped, and refuses connections, until it is started again.`
            : "Stop Image Serving? Every component and the Server Supervisor stop.";
        document.getElementById("confirm").hidden = false;
        return;
    }
    run(action, name);
}

/* The last 50 journal lines of one component, then the new ones as they come. */
function showLogs(name) {
    if (logs)
        logs.close("terminated");
    const section = document.getElementById("logs");
    const pre = document.getElementById("log");
    section.hidden = false;
    document.getElementById("logs-title").textContent = `Logs of ${name}`;
    pre.setAttribute("data-logs", name);
    pre.textContent = "";
    // journalctl's own words (a hint that the journal cannot be read) belong in the view too.
    logs = cockpit.spawn([TOOL, "logs", name, "-n", "50", "--follow", "-o", "short-iso"], { err: "out" });
    logs.stream(chunk => {
        pre.textContent += chunk;
        const lines = pre.textContent.split("\n");
        if (lines.length > 500)
            pre.textContent = lines.slice(-500).join("\n");
        pre.scrollTop = pre.scrollHeight;
    });
    logs.catch(ex => {
        if (ex && ex.problem === "terminated")
            return;
        pre.textContent += String((ex && ex.message) || "").trim() || "the journal cannot be read";
    });
}

document.addEventListener("DOMContentLoaded", () => {
    for (const b of document.querySelectorAll("[data-component=supervisor] button[data-action]"))
        b.addEventListener("click", () => act(b.getAttribute("data-action"), null));
    document.querySelector("[data-action=confirm]").addEventListener("click", () => {
        document.getElementById("confirm").hidden = true;
        run("stop", pendingStop);
    });
    document.querySelector("[data-action=cancel]").addEventListener("click", () => {
        document.getElementById("confirm").hidden = true;
    });
    follow();
});
