// cairn's web UI: the little that needs a script. Everything goes through the gateway's own
// JSON API (same origin, the session's cookie); anything shown is set as text, never as HTML.
"use strict";

function notice(text, ok) {
  const box = document.getElementById("notice");
  if (!box) return;
  box.textContent = text;
  box.classList.toggle("ok", !!ok);
  box.hidden = false;
}

function join(dir, name) {
  return dir.endsWith("/") ? dir + name : dir + "/" + name;
}

function url(path, params) {
  return path + "?" + new URLSearchParams(params).toString();
}

// An API call's JSON answer; a failure throws the gateway's message.
async function call(method, target) {
  const response = await fetch(target, { method, credentials: "same-origin" });
  const text = await response.text();
  let body = null;
  try { body = text ? JSON.parse(text) : null; } catch (_) { body = null; }
  if (!response.ok) {
    throw new Error((body && body.error) || response.status + " " + response.statusText);
  }
  return body;
}

// Sends one file as a PUT /uri body, showing its progress; its cap.
function put(file, progress, label) {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("PUT", url("/uri", { name: file.name }));
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) {
        progress.max = e.total || 1;
        progress.value = e.loaded;
        label.textContent = file.name + ": " + Math.round((100 * e.loaded) / (e.total || 1)) + "%";
      }
    };
    xhr.upload.onload = () => { label.textContent = file.name + ": encoding and placing shares"; };
    xhr.onload = () => {
      let body = null;
      try { body = JSON.parse(xhr.responseText); } catch (_) { body = null; }
      if (xhr.status === 200 && body && body.cap) resolve(body.cap);
      else reject(new Error((body && body.error) || "upload failed: " + xhr.status));
    };
    xhr.onerror = () => reject(new Error("the upload broke off"));
    xhr.send(file);
  });
}

const actions = {
  async upload(form) {
    const dir = form.dataset.dir;
    const progress = form.querySelector("progress");
    const label = form.querySelector(".progress-text");
    progress.hidden = false;
    for (const file of form.elements.files.files) {
      const cap = await put(file, progress, label);
      const params = { path: join(dir, file.name), cap };
      if (file.lastModified) params.mtime = Math.floor(file.lastModified / 1000);
      await call("POST", url("/vdrive/link", params));
    }
  },
  async mkdir(form) {
    await call("POST", url("/vdrive/mkdir", { path: join(form.dataset.dir, form.elements.name.value) }));
  },
  async rename(form) {
    const to = join(form.dataset.dir, form.elements.to.value);
    await call("POST", url("/vdrive/rename", { from: form.dataset.path, to }));
  },
  async unlink(form) {
    await call("POST", url("/vdrive/unlink", { path: form.dataset.path }));
  },
};

document.addEventListener("submit", async (event) => {
  const form = event.target;
  const action = actions[form.dataset.action];
  if (!action) return;
  event.preventDefault();
  const buttons = form.querySelectorAll("button");
  buttons.forEach((b) => { b.disabled = true; });
  try {
    await action(form);
    location.reload();
  } catch (error) {
    notice(error.message);
    buttons.forEach((b) => { b.disabled = false; });
  }
});

// ---- a file's health ----

function element(tag, text, className) {
  const e = document.createElement(tag);
  if (text !== undefined) e.textContent = text;
  if (className) e.className = className;
  return e;
}

function showReport(section, report) {
  const names = JSON.parse(section.dataset.nicknames || "{}");
  const out = section.querySelector("#report");
  out.replaceChildren();
  const verdict = report.healthy ? "healthy" : report.recoverable ? "not healthy, but recoverable" : "UNRECOVERABLE";
  out.append(element("p", verdict, report.healthy ? "good verdict" : "bad verdict"));
  const dl = element("dl");
  const row = (k, v) => { dl.append(element("dt", k), element("dd", String(v))); };
  row("Distinct shares", report.distinct_shares + " of " + report.n + " (" + report.k + " needed)");
  row("Happiness", report.happiness + " (wanted " + report.happy + ")");
  row("Servers", report.servers_answered + " of " + report.servers_asked + " answered");
  if (report.faults.length) row("Bad copies", report.faults.join("; "));
  if (report.repair) {
    const r = report.repair;
    row("Repair", r.error ? "fell short: " + r.error
      : r.shares_placed + " shares placed, happiness " + r.happiness_before + " → " + r.happiness_after);
  }
  out.append(dl);
  out.append(element("h3", "Where the shares are"));
  const table = element("table", undefined, "shares");
  const head = element("tr");
  head.append(element("th", "Share"), element("th", "Held by"));
  table.append(head);
  for (const [share, holders] of Object.entries(report.holders)) {
    const tr = element("tr");
    tr.append(element("td", share), element("td", holders.map((id) => (names[id] || "") + " " + id.slice(0, 12)).join(", ")));
    table.append(tr);
  }
  const scroll = element("div", undefined, "scroll");
  scroll.append(table);
  out.append(scroll);
}

async function check(section, kind) {
  const params = { cap: section.dataset.cap };
  if (kind !== "check") params.verify = "true";
  if (kind === "repair") params.repair = "true";
  const buttons = section.querySelectorAll("button");
  buttons.forEach((b) => { b.disabled = true; });
  section.querySelector("#report").textContent = kind === "check" ? "checking…" : "reading every share…";
  try {
    showReport(section, await call("POST", url("/check", params)));
  } catch (error) {
    section.querySelector("#report").textContent = "";
    notice(error.message);
  } finally {
    buttons.forEach((b) => { b.disabled = false; });
  }
}

document.addEventListener("DOMContentLoaded", () => {
  const health = document.getElementById("health");
  if (health) {
    health.querySelectorAll("button[data-check]").forEach((button) => {
      button.addEventListener("click", () => check(health, button.dataset.check));
    });
    check(health, "check");
  }
  const running = document.querySelector("section[data-running]");
  if (running && running.dataset.running !== "0") {
    setTimeout(() => location.reload(), 1500);
  }
});
