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
    if (!resp.ok) {
      const err = new Error(data.error || ("HTTP " + resp.status));
      if (data.fields) err.fields = data.fields;
      throw err;
    }
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
      if (item.version !== undefined) {
        // Keep the version the next decision on this item's story is based on.
        rows.forEach((r) => {
          const at = storyIds(r).indexOf(Number(item.id));
          if (at < 0) return;
          const versions = storyVersions(r);
          versions[at] = Number(item.version);
          r.dataset.storyVersions = versions.join(",");
        });
      }
      const row = rows.find((r) => r.dataset.id === String(item.id));
      if (!row) return;
      row.className = row.className.replace(/\bst-\S+/g, "").trim() + " st-" + item.status;
      row.dataset.status = item.status;
      if (item.version !== undefined) row.dataset.version = String(item.version);
      const label = row.querySelector("[data-status-label]");
      if (label) label.textContent = item.status;
      // Only an included item is in an entry: any other status took it out of its entry.
      const entry = row.querySelector("[data-entry-label]");
      if (entry && item.status !== "included") entry.remove();
      row.classList.remove("flash");
      void row.offsetWidth; // restart the animation
      row.classList.add("flash");
    }

    // The rows an action applies to: the one clicked, else the selected, else the current.
    function targets(onlyRow) {
      if (onlyRow !== undefined) return [rows[onlyRow]];
      if (selected.size) return rows.filter((r) => selected.has(r.dataset.id));
      return cur >= 0 ? [rows[cur]] : [];
    }

    // Every item of a row's story: keys act on the whole story.
    function storyIds(row) {
      const ids = (row.dataset.storyIds || row.dataset.id).split(",").filter(Boolean).map(Number);
      return ids.length ? ids : [Number(row.dataset.id)];
    }

    // The version each of a row's story items was shown at (data-story-versions, in the order
    // of data-story-ids).
    function storyVersions(row) {
      const ids = storyIds(row);
      const shown = (row.dataset.storyVersions || "").split(",").filter((v) => v !== "").map(Number);
      return shown.length === ids.length ? shown : ids.map(() => Number(row.dataset.version || 0));
    }

    async function include(targetRows) {
      let made = 0;
      for (const row of targetRows) {
        try {
          const data = await postJSON("/api/entries/include", { item_id: Number(row.dataset.id) });
          // Including bumps each item's version: keep them, or the next key on this row is
          // refused as stale although nobody else touched the story.
          data.entry.items.forEach((it) => applyState({ id: it.id, status: it.status,
            version: it.version }));
          applyState({ id: row.dataset.id, status: "included" });
          let label = row.querySelector("[data-entry-label]");
          if (!label) {
            label = document.createElement("a");
            label.className = "entry-mark";
            label.setAttribute("data-entry-label", "");
            row.querySelector(".meta").appendChild(label);
          }
          label.textContent = "in entry " + data.entry.id;
          if (label.tagName === "A") label.href = data.entry.url;
          made += 1;
        } catch (e) {
          toast("Not included: " + e.message, true);
          return made;
        }
      }
      return made;
    }

    async function act(status, onlyRow) {
      const single = onlyRow !== undefined || selected.size === 0;
      const chosen = targets(onlyRow);
      if (!chosen.length) return;
      try {
        if (status === "included") {
          const made = await include(chosen);
          if (!made) return;
          toast(made === 1 ? "Story included as an entry" : made + " stories included");
        } else {
          const ids = [].concat(...chosen.map(storyIds));
          // The versions the rows were shown at: an item another editor changed since is
          // refused, like a stale save.
          const versions = [].concat(...chosen.map(storyVersions));
          // The API takes at most 500 ids a request; a templated series can make big stories.
          for (let at = 0; at < ids.length; at += 500) {
            const data = await postJSON("/api/items/status",
              { ids: ids.slice(at, at + 500), versions: versions.slice(at, at + 500),
                status: status });
            data.items.forEach(applyState);
          }
          toast(chosen.length === 1 ? "Story " + status : chosen.length + " stories " + status);
        }
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
      if (b.hasAttribute("data-bulk-merge")) { mergeStories(); return; }
      if (b.dataset.bulk) act(b.dataset.bulk);
    });

    // The selected rows' stories are one development: one story, kept by later runs.
    async function mergeStories() {
      const chosen = rows.filter((r) => selected.has(r.dataset.id));
      if (chosen.length < 2) { toast("Select two or more stories to merge (space)", true); return; }
      try {
        const data = await postJSON("/api/stories/merge",
          { item_ids: chosen.map((r) => Number(r.dataset.id)) });
        toast(data.merged + " stories merged");
        location.reload();
      } catch (e) { toast("Not merged: " + e.message, true); }
    }

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
        case "m": mergeStories(); break;
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

  // --- unsaved changes --------------------------------------------------------------------
  // Forms marked data-guard are watched: leaving the page with changes asks first — our own
  // banner for in-page ways out (Esc, links), the browser's prompt for closing the tab.
  const guard = { forms: [], leaving: false };

  function formState(form) {
    return JSON.stringify(Array.from(new FormData(form).entries())
      .filter(([k]) => k !== "csrf_token" && k !== "base" && k !== "version"));
  }

  function isDirty() {
    return !guard.leaving && guard.forms.some((f) => formState(f) !== f.dataset.initial);
  }

  function markClean(form) { form.dataset.initial = formState(form); }

  function leave(url) {
    if (!isDirty()) { location.href = url; return; }
    const bar = document.getElementById("leave-guard");
    if (!bar) return;
    bar.hidden = false;
    bar.querySelector("[data-leave]").onclick = () => {
      guard.leaving = true;
      // Leaving without saving on purpose: the kept blurb is not wanted back.
      guard.forms.forEach((f) => {
        if (f.dataset.item) { try { localStorage.removeItem("desk:blurb:" + f.dataset.item); } catch (e) { /* none */ } }
      });
      location.href = url;
    };
    bar.querySelector("[data-stay]").onclick = () => { bar.hidden = true; };
    bar.querySelector("[data-stay]").focus();
  }

  function initGuard() {
    guard.forms = Array.from(document.querySelectorAll("form[data-guard]"));
    if (!guard.forms.length) return;
    const bar = document.createElement("div");
    bar.id = "leave-guard";
    bar.className = "leave-guard";
    bar.hidden = true;
    bar.setAttribute("role", "alertdialog");
    bar.innerHTML = "<span>You have unsaved changes.</span> " +
      "<button type=\"button\" data-leave>Leave without saving</button> " +
      "<button type=\"button\" class=\"primary\" data-stay>Stay</button>";
    document.body.appendChild(bar);
    guard.forms.forEach((f) => {
      if (f.dataset.initial === undefined) markClean(f);
      f.addEventListener("submit", () => { guard.leaving = true; });
    });
    document.addEventListener("click", (ev) => {
      const a = ev.target.closest("a[href]");
      if (!a || a.target === "_blank" || ev.ctrlKey || ev.metaKey || ev.shiftKey) return;
      if (!isDirty()) return;
      ev.preventDefault();
      leave(a.href);
    });
    window.addEventListener("beforeunload", (ev) => {
      if (!isDirty()) return;
      ev.preventDefault();
      ev.returnValue = "";
    });
  }

  // The text being written, kept in localStorage under `key` on every keystroke, is put back
  // in `field` after a crash of the browser; "Discard it" (#drop-restored) puts the saved text
  // back. `changed` runs after either, to refresh what depends on the field.
  function restoreKept(store, key, field, changed) {
    let kept = null;
    try { kept = JSON.parse(store.getItem(key) || "null"); } catch (e) { kept = null; }
    if (!kept || typeof kept.text !== "string" || kept.text === field.value) return;
    const original = field.value;
    field.value = kept.text;
    const note = document.getElementById("restored");
    if (note) {
      note.hidden = false;
      document.getElementById("drop-restored").addEventListener("click", () => {
        field.value = original;
        store.removeItem(key);
        note.hidden = true;
        changed();
      });
    }
    setTimeout(changed, 0);
  }

  // --- item page --------------------------------------------------------------------------
  function initItem() {
    const form = document.getElementById("edit-form");
    const blurb = document.getElementById("blurb");
    const preview = document.getElementById("blurb-preview");
    let timer = null;
    // The blurb being written is kept in localStorage on every keystroke, so a crash of the
    // browser loses nothing; it is dropped once the save went through.
    const key = form ? "desk:blurb:" + form.dataset.item : null;
    const store = (() => { try { return window.localStorage; } catch (e) { return null; } })();
    if (form && blurb && store && key) {
      if (document.getElementById("saved")) store.removeItem(key);
      markClean(form);
      restoreKept(store, key, blurb, () => blurb.dispatchEvent(new Event("input")));
      blurb.addEventListener("input", () => {
        if (formState(form) === form.dataset.initial) store.removeItem(key);
        else store.setItem(key, JSON.stringify({ text: blurb.value, at: Date.now() }));
      });
    }
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
        const bar = document.getElementById("leave-guard");
        if (help && !help.hidden) toggleHelp(false);
        else if (bar && !bar.hidden) bar.hidden = true;
        else leave("/");
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
        case "e": case "Enter": if (cur) location.href = "/entries/" + cur.dataset.id; break;
        case "?": toggleHelp(); break;
        case "Escape": toggleHelp(false); break;
        default: return;
      }
      ev.preventDefault();
    });

    const first = items()[0];
    if (first) { first.classList.add("cur"); cur = first; }
  }

  // --- entry page -------------------------------------------------------------------------
  function initEntry() {
    const root = document.getElementById("entry");
    if (!root) return;
    const id = root.dataset.id;
    const blurb = document.getElementById("e-blurb");
    const headline = document.getElementById("e-headline");
    const key = document.getElementById("e-key");
    const section = document.getElementById("e-section");
    const preview = document.getElementById("entry-preview");
    const previewHead = document.getElementById("preview-headline");
    const counter = document.getElementById("word-count");
    const state = document.getElementById("save-state");
    let timer = null;
    // The selection in the paragraph, kept when a button takes the focus away.
    let sel = { start: 0, end: 0 };
    const remember = () => { sel = { start: blurb.selectionStart, end: blurb.selectionEnd }; };
    ["select", "keyup", "mouseup", "input"].forEach((e) => blurb.addEventListener(e, remember));

    function show(data) {
      // Server-rendered by the draft's own renderer: text escaped, http(s) links only.
      preview.innerHTML = data.html;
      previewHead.textContent = data.headline;
      counter.textContent = data.words + " words";
      counter.classList.toggle("out", !data.in_range);
    }

    function refresh() {
      clearTimeout(timer);
      timer = setTimeout(async () => {
        try {
          show(await postJSON("/api/entries/" + id + "/preview",
            { blurb: blurb.value, headline: headline.value, key_phrase: key.value }));
        } catch (e) { toast("Preview failed: " + e.message, true); }
      }, 200);
    }
    [blurb, headline, key].forEach((el) => el.addEventListener("input", refresh));

    // Per-field saves: `base` is what the page showed, so a reorder or another editor's
    // change to another field never refuses this save; a field both changed is shown side
    // by side (theirs, yours) and the typed text stays in the form.
    const form = document.getElementById("entry-form");
    const values = () => ({ headline: headline.value, key_phrase: key.value,
      blurb: blurb.value, section: section.value });
    let base = values();
    const conflictBox = document.getElementById("entry-conflicts");
    // The paragraph being written is kept in localStorage on every keystroke (a browser crash
    // loses nothing) and dropped once saved.
    const keep = "desk:entry:" + id;
    const store = (() => { try { return window.localStorage; } catch (e) { return null; } })();
    if (store) {
      restoreKept(store, keep, blurb, refresh);
      blurb.addEventListener("input", () => {
        if (blurb.value === base.blurb) store.removeItem(keep);
        else store.setItem(keep, JSON.stringify({ text: blurb.value, at: Date.now() }));
      });
    }

    function showConflicts(fields) {
      conflictBox.textContent = "";
      Object.entries(fields).forEach(([name, both]) => {
        const wrap = document.createElement("div");
        const title = document.createElement("strong");
        title.textContent = name + " was changed meanwhile:";
        const pair = document.createElement("div");
        pair.className = "conflict";
        [["theirs (saved)", both.theirs], ["yours (in the form)", both.yours]].forEach(([lab, text]) => {
          const col = document.createElement("div");
          const h = document.createElement("div");
          h.className = "hint";
          h.textContent = lab;
          const pre = document.createElement("pre");
          pre.textContent = text || "—";
          col.append(h, pre);
          pair.append(col);
        });
        wrap.append(title, pair);
        conflictBox.append(wrap);
        // Saving again keeps yours: the base becomes what is saved now.
        base[name] = both.theirs || "";
      });
      conflictBox.hidden = false;
    }

    async function save() {
      try {
        const data = await postJSON("/api/entries/" + id, {
          version: Number(root.dataset.version), base, ...values(),
        });
        root.dataset.version = String(data.entry.version);
        base = values();
        if (form) markClean(form);
        if (store) store.removeItem(keep);
        conflictBox.hidden = true;
        show(data.shown);
        if (state) state.textContent = "saved · version " + data.entry.version;
        toast("Entry saved");
      } catch (e) {
        if (e.fields) showConflicts(e.fields);
        toast("Not saved: " + e.message, true);
      }
    }
    document.getElementById("save-entry").addEventListener("click", save);
    // Never the form's own submission (a GET that would leave the page with the text in its
    // URL); set here, not inline, which the CSP forbids.
    if (form) form.addEventListener("submit", (ev) => ev.preventDefault());

    document.getElementById("start-draft").addEventListener("click", () => {
      const drafted = document.getElementById("drafted-blurb").value;
      if (blurb.value.trim() && !window.confirm("Replace the paragraph with the draft?")) return;
      blurb.value = drafted;
      if (!headline.value.trim()) headline.value = document.getElementById("drafted-headline").value;
      refresh();
    });

    async function change(path, body) {
      try {
        const data = await postJSON("/api/entries/" + id + path, body);
        location.href = data.entry ? data.entry.url : "/issue";
      } catch (e) { toast("Not changed: " + e.message, true); }
    }

    root.addEventListener("click", (ev) => {
      const t = ev.target;
      const link = t.closest("[data-link-item]");
      if (link) {
        const card = link.closest(".card");
        const url = card ? card.dataset.url : "";
        const words = blurb.value.slice(sel.start, sel.end);
        if (!url) return;
        if (!words.trim()) { toast("Select words in the paragraph first", true); return; }
        // Surrounding spaces stay outside the link: "[said](…) ", not "[said ](…)".
        const lead = words.length - words.trimStart().length;
        const trail = words.length - words.trimEnd().length;
        const label = words.trim().replace(/[\[\]]/g, "");
        const before = blurb.value.slice(0, sel.start + lead);
        const after = blurb.value.slice(sel.end - trail);
        const md = "[" + label + "](" + url + ")";
        blurb.value = before + md + after;
        const end = before.length + md.length;
        blurb.focus();
        blurb.setSelectionRange(end, end);
        remember();
        refresh();
        return;
      }
      const lead = t.closest("[data-lead]");
      if (lead) { change("/lead", { item_id: Number(lead.dataset.lead) }); return; }
      const drop = t.closest("[data-drop]");
      if (drop) { change("/drop", { item_ids: [Number(drop.dataset.drop)] }); return; }
      const keep = t.closest("[data-keep]");
      if (keep) { change("/items", { item_id: Number(keep.dataset.keep) }); return; }
      const move = t.closest("[data-move]");
      if (move) { change("/move", { item_id: Number(move.dataset.move) }); return; }
    });

    document.getElementById("add-item").addEventListener("submit", (ev) => {
      ev.preventDefault();
      const value = Number(document.getElementById("add-item-id").value);
      if (!value) { toast("Give an item id", true); return; }
      change("/items", { item_id: value });
    });

    document.addEventListener("keydown", (ev) => {
      if ((ev.ctrlKey || ev.metaKey) && ev.key === "s") { ev.preventDefault(); save(); return; }
      if (inField(ev)) { if (ev.key === "Escape") ev.target.blur(); return; }
      if (ev.key === "?") { toggleHelp(); ev.preventDefault(); }
      else if (ev.key === "Escape") {
        const help = document.getElementById("help");
        if (help && !help.hidden) toggleHelp(false); else location.href = "/issue";
      }
    });
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
    initGuard();
    if (page === "queue") initQueue();
    else if (page === "item") initItem();
    else if (page === "issue") initIssue();
    else if (page === "entry") initEntry();
    else initOther();
  });
})();
