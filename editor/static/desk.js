// Alliance Digest desk: keyboard triage, in-place updates, issue ordering.
// Loaded as a file (the CSP forbids inline script); no framework, no build step.
"use strict";

(function () {
  const csrf = () => {
    const m = document.querySelector('meta[name="csrf-token"]');
    return m ? m.content : "";
  };

  // POST JSON with the session's CSRF token; resolves to the parsed body, rejects with a message.
  async function postJSON(url, body) {
    const resp = await fetch(url, {
      method: "POST",
      credentials: "same-origin",
      headers: { "Content-Type": "application/json", "X-CSRF-Token": csrf() },
      body: JSON.stringify(body),
    });
    let data = {};
    try { data = await resp.json(); } catch (e) { data = {}; }
    if (resp.status === 401) { window.location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); }
    if (!resp.ok) { throw new Error(data.error || ("HTTP " + resp.status)); }
    return data;
  }

  let toastTimer = null;
  function toast(message, bad) {
    const el = document.getElementById("toast");
    if (!el) return;
    el.textContent = message;
    el.classList.toggle("bad", !!bad);
    el.hidden = false;
    clearTimeout(toastTimer);
    toastTimer = setTimeout(() => { el.hidden = true; }, bad ? 6000 : 1800);
  }

  function inField(ev) {
    const t = ev.target;
    if (!t) return false;
    // A checkbox keeps focus after a click; it must not swallow the triage keys.
    if (t.tagName === "INPUT" && (t.type === "checkbox" || t.type === "radio")) return false;
    return t.isContentEditable || ["INPUT", "TEXTAREA", "SELECT"].includes(t.tagName);
  }

  function toggleHelp(force) {
    const help = document.getElementById("help");
    if (!help) return;
    help.hidden = force === undefined ? !help.hidden : !force;
  }

  document.addEventListener("click", (ev) => {
    const t = ev.target;
    if (t.closest("[data-help-toggle]")) { toggleHelp(); return; }
    const help = document.getElementById("help");
    if (help && !help.hidden && t === help) toggleHelp(false);
  });

  // --- queue ------------------------------------------------------------------------------
  function initQueue() {
    const rows = Array.from(document.querySelectorAll("tr.row"));
    const selected = new Set();
    const bulk = document.getElementById("bulk");
    const bulkCount = document.getElementById("bulk-count");
    const pickAll = document.getElementById("pick-all");
    let cur = rows.length ? 0 : -1;
    let lastPicked = -1;
    let pendingG = false;

    function setCursor(i, scroll) {
      if (!rows.length) return;
      i = Math.max(0, Math.min(rows.length - 1, i));
      if (cur >= 0 && rows[cur]) rows[cur].classList.remove("cur");
      cur = i;
      rows[cur].classList.add("cur");
      if (scroll !== false) rows[cur].scrollIntoView({ block: "nearest" });
    }

    function renderSelection() {
      rows.forEach((r) => {
        const on = selected.has(r.dataset.id);
        r.classList.toggle("sel", on);
        const box = r.querySelector("input.pick");
        if (box) box.checked = on;
      });
      bulk.hidden = selected.size === 0;
      bulkCount.textContent = String(selected.size);
      if (pickAll) pickAll.checked = rows.length > 0 && selected.size === rows.length;
    }

    function pick(i, on) {
      const id = rows[i].dataset.id;
      if (on === undefined) on = !selected.has(id);
      if (on) selected.add(id); else selected.delete(id);
    }

    function pickRange(a, b, on) {
      const [lo, hi] = a < b ? [a, b] : [b, a];
      for (let i = lo; i <= hi; i++) pick(i, on);
    }

    function applyState(item) {
      const row = rows.find((r) => r.dataset.id === String(item.id));
      if (!row) return;
      row.className = row.className.replace(/\bst-\S+/g, "").trim() + " st-" + item.status;
      row.dataset.status = item.status;
      row.dataset.version = String(item.version);
      const label = row.querySelector("[data-status-label]");
      if (label) label.textContent = item.status;
      row.classList.remove("flash");
      void row.offsetWidth; // restart the animation
      row.classList.add("flash");
    }

    async function act(status, onlyRow) {
      let ids;
      const single = onlyRow !== undefined || selected.size === 0;
      if (onlyRow !== undefined) ids = [Number(rows[onlyRow].dataset.id)];
      else if (selected.size) ids = Array.from(selected, Number);
      else if (cur >= 0) ids = [Number(rows[cur].dataset.id)];
      else return;
      try {
        // The versions the rows were shown at: a row another editor changed since is refused.
        const versions = ids.map((id) => {
          const row = rows.find((r) => r.dataset.id === String(id));
          return Number(row ? row.dataset.version : 0);
        });
        const data = await postJSON("/api/items/status", { ids: ids, versions: versions, status: status });
        data.items.forEach(applyState);
        toast(ids.length === 1 ? "Item " + status : ids.length + " items " + status);
        if (single) setCursor((onlyRow !== undefined ? onlyRow : cur) + 1);
        else { selected.clear(); renderSelection(); }
      } catch (e) {
        toast("Not saved: " + e.message, true);
      }
    }

    rows.forEach((row, i) => {
      row.addEventListener("click", (ev) => {
        const t = ev.target;
        const btn = t.closest("button[data-act]");
        if (btn) { setCursor(i, false); act(btn.dataset.act, i); return; }
        if (t.closest("input.pick")) {
          if (ev.shiftKey && lastPicked >= 0) pickRange(lastPicked, i, t.checked);
          else pick(i, t.checked);
          lastPicked = i;
          setCursor(i, false);
          renderSelection();
          t.blur(); // keys go to the queue, and space must not toggle the box natively too
          return;
        }
        if (t.closest("a")) return;
        if (ev.shiftKey) {
          // shift+click anywhere on a row selects it (and the range from the last one picked).
          ev.preventDefault();
          if (lastPicked >= 0) pickRange(lastPicked, i, true); else pick(i, true);
          lastPicked = i;
          renderSelection();
        }
        setCursor(i, false);
      });
    });

    if (pickAll) {
      pickAll.addEventListener("change", () => {
        rows.forEach((r, i) => pick(i, pickAll.checked));
        renderSelection();
      });
    }
    bulk.addEventListener("click", (ev) => {
      const b = ev.target.closest("button");
      if (!b) return;
      if (b.hasAttribute("data-bulk-clear")) { selected.clear(); renderSelection(); return; }
      if (b.dataset.bulk) act(b.dataset.bulk);
    });

    document.addEventListener("keydown", (ev) => {
      if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
      if (inField(ev)) {
        if (ev.key === "Escape") ev.target.blur();
        return;
      }
      const help = document.getElementById("help");
      if (help && !help.hidden && ev.key !== "?" && ev.key !== "Escape") return;
      if (pendingG) {
        pendingG = false;
        if (ev.key === "i") { location.href = "/issue"; return; }
        if (ev.key === "s") { location.href = "/sources"; return; }
        if (ev.key === "q") { location.href = "/"; return; }
      }
      switch (ev.key) {
        case "j": case "ArrowDown": setCursor(cur + 1); break;
        case "k": case "ArrowUp": setCursor(cur - 1); break;
        case " ":
          if (cur >= 0) { pick(cur); lastPicked = cur; renderSelection(); }
          break;
        case "s": act("shortlisted"); break;
        case "i": act("included"); break;
        case "x": act("excluded"); break;
        case "u": act("candidate"); break;
        case "a": rows.forEach((r, i) => pick(i, true)); renderSelection(); break;
        case "e": case "Enter":
          if (cur >= 0) location.href = "/items/" + rows[cur].dataset.id;
          break;
        case "o":
          if (cur >= 0 && rows[cur].dataset.url) window.open(rows[cur].dataset.url, "_blank", "noopener,noreferrer");
          break;
        case "/": { const q = document.getElementById("q"); if (q) { q.focus(); q.select(); } break; }
        case "?": toggleHelp(); break;
        case "g": pendingG = true; return;
        case "Escape":
          if (help && !help.hidden) toggleHelp(false);
          else { selected.clear(); renderSelection(); }
          break;
        default: return;
      }
      ev.preventDefault();
    });

    if (rows.length) setCursor(0, false);
    renderSelection();
  }

  // --- item page --------------------------------------------------------------------------
  function initItem() {
    const form = document.getElementById("edit-form");
    const blurb = document.getElementById("blurb");
    const preview = document.getElementById("blurb-preview");
    let timer = null;
    if (blurb && preview) {
      blurb.addEventListener("input", () => {
        clearTimeout(timer);
        timer = setTimeout(async () => {
          try {
            const data = await postJSON("/api/blurb-preview", { text: blurb.value });
            // Server-rendered: text escaped, only <p>, <br>, <strong> and http(s) <a>.
            preview.innerHTML = data.html;
          } catch (e) { toast("Preview failed: " + e.message, true); }
        }, 250);
      });
    }
    document.addEventListener("keydown", (ev) => {
      if ((ev.ctrlKey || ev.metaKey) && ev.key === "s") {
        ev.preventDefault();
        if (form) form.requestSubmit();
        return;
      }
      if (inField(ev)) {
        if (ev.key === "Escape") ev.target.blur();
        return;
      }
      if (ev.key === "?") { toggleHelp(); ev.preventDefault(); }
      else if (ev.key === "Escape") {
        const help = document.getElementById("help");
        if (help && !help.hidden) toggleHelp(false); else location.href = "/";
      }
    });
  }

  // --- issue page -------------------------------------------------------------------------
  function initIssue() {
    const lists = Array.from(document.querySelectorAll("ol.sec-items"));
    const state = document.getElementById("save-state");
    const frame = document.getElementById("preview");
    let cur = null;
    let dragged = null;
    let saveTimer = null;

    const items = () => Array.from(document.querySelectorAll("li.issue-item"));

    function setCursor(li) {
      if (!li) return;
      if (cur) cur.classList.remove("cur");
      cur = li;
      cur.classList.add("cur");
      cur.scrollIntoView({ block: "nearest" });
    }

    function refreshCounts() {
      lists.forEach((ol) => {
        const h = ol.previousElementSibling;
        const c = h && h.querySelector(".count");
        if (c) c.textContent = String(ol.children.length);
      });
    }

    function order() {
      return lists.map((ol) => ({
        name: ol.dataset.section || null,
        ids: Array.from(ol.querySelectorAll("li.issue-item"), (li) => Number(li.dataset.id)),
      }));
    }

    function scheduleSave() {
      refreshCounts();
      if (state) state.textContent = "saving…";
      clearTimeout(saveTimer);
      saveTimer = setTimeout(save, 300);
    }

    async function save() {
      try {
        await postJSON("/api/issue/order", { sections: order() });
        if (state) state.textContent = "order saved";
        if (frame) frame.src = "/issue/preview?t=" + Date.now();
      } catch (e) {
        if (state) state.textContent = "";
        toast("Order not saved: " + e.message, true);
      }
    }

    // Move an item one place; at a section's edge it moves into the neighbouring section.
    function move(li, dir) {
      const ol = li.parentElement;
      const idx = lists.indexOf(ol);
      if (dir < 0) {
        const prev = li.previousElementSibling;
        if (prev) ol.insertBefore(li, prev);
        else if (idx > 0) lists[idx - 1].appendChild(li);
        else return;
      } else {
        const next = li.nextElementSibling;
        if (next) ol.insertBefore(next, li);
        else if (idx < lists.length - 1) lists[idx + 1].insertBefore(li, lists[idx + 1].firstChild);
        else return;
      }
      setCursor(li);
      scheduleSave();
    }

    items().forEach((li) => {
      li.addEventListener("click", (ev) => { if (!ev.target.closest("a")) setCursor(li); });
      li.addEventListener("dragstart", (ev) => {
        dragged = li;
        li.classList.add("dragging");
        ev.dataTransfer.effectAllowed = "move";
        ev.dataTransfer.setData("text/plain", li.dataset.id);
      });
      li.addEventListener("dragend", () => {
        li.classList.remove("dragging");
        if (dragged) { dragged = null; setCursor(li); scheduleSave(); }
      });
    });

    lists.forEach((ol) => {
      ol.addEventListener("dragover", (ev) => {
        if (!dragged) return;
        ev.preventDefault();
        const over = ev.target.closest("li.issue-item");
        if (over && over !== dragged) {
          const box = over.getBoundingClientRect();
          const after = ev.clientY > box.top + box.height / 2;
          ol.insertBefore(dragged, after ? over.nextSibling : over);
        } else if (!over && !ol.contains(dragged)) {
          ol.appendChild(dragged);
        }
      });
      ol.addEventListener("drop", (ev) => { ev.preventDefault(); });
    });

    document.addEventListener("keydown", (ev) => {
      if (inField(ev) || ev.ctrlKey || ev.metaKey) return;
      const all = items();
      const i = cur ? all.indexOf(cur) : -1;
      if (ev.altKey && (ev.key === "ArrowUp" || ev.key === "ArrowDown")) {
        if (cur) move(cur, ev.key === "ArrowUp" ? -1 : 1);
        ev.preventDefault();
        return;
      }
      if (ev.altKey) return;
      switch (ev.key) {
        case "j": case "ArrowDown": setCursor(all[Math.min(all.length - 1, i + 1)]); break;
        case "k": case "ArrowUp": setCursor(all[Math.max(0, i - 1)]); break;
        case "[": if (cur) move(cur, -1); break;
        case "]": if (cur) move(cur, 1); break;
        case "e": case "Enter": if (cur) location.href = "/items/" + cur.dataset.id; break;
        case "?": toggleHelp(); break;
        case "Escape": toggleHelp(false); break;
        default: return;
      }
      ev.preventDefault();
    });

    const first = items()[0];
    if (first) { first.classList.add("cur"); cur = first; }
  }

  function initOther() {
    document.addEventListener("keydown", (ev) => {
      if (inField(ev)) return;
      if (ev.key === "?") toggleHelp();
      if (ev.key === "Escape") toggleHelp(false);
    });
  }

  document.addEventListener("DOMContentLoaded", () => {
    const page = document.body.dataset.page;
    if (page === "queue") initQueue();
    else if (page === "item") initItem();
    else if (page === "issue") initIssue();
    else initOther();
  });
})();
