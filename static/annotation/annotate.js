// Arbiter annotation page: keyboard-first labelling with the next pair prefetched.
// The server only ever sends an assignment's opaque id and the two responses in their stored left/right order.
(function () {
  "use strict";
  const root = document.getElementById("annotate");
  if (!root) return;
  const slot = document.getElementById("item-slot");
  const prefetched = document.getElementById("prefetched");
  const flash = document.getElementById("flash");
  const counter = document.getElementById("progress-counter");
  const drawer = document.getElementById("guidelines-drawer");
  const csrf = document.querySelector('meta[name="csrf-token"]').content;
  const nextUrl = root.dataset.nextUrl;
  const baseUrl = root.dataset.baseUrl;
  let shownAt = performance.now();
  let done = Number(counter.dataset.done || 0);
  let left = Number(counter.dataset.left || 0);  // an estimate: others take pairs too, calibration comes on top
  const showCount = () => {
    counter.textContent = `${done} labelled · ${left > 0 ? left + " left" : "the end is near"}`;
  };
  let busy = false;
  let prefetching = null;
  let prefetchedEmpty = false;

  const form = () => slot.querySelector("form.item");
  const currentId = () => (form() ? form().dataset.assignment : null);

  function say(text, kind) {
    flash.textContent = text;
    flash.className = kind || "";
    flash.hidden = !text;
  }

  function post(url, body, json) {
    const headers = { "X-CSRFToken": csrf };
    if (json) headers["Content-Type"] = "application/json";
    return fetch(url, { method: "POST", headers, body, credentials: "same-origin" });
  }

  function prefetch() {
    const id = currentId();
    if (!id) return Promise.resolve();
    const body = new URLSearchParams();
    body.append("exclude", id);
    prefetching = post(nextUrl, body)
      .then((r) => {
        if (r.status === 204) { prefetched.innerHTML = ""; prefetchedEmpty = true; return; }
        if (!r.ok) throw new Error("prefetch " + r.status);
        return r.text().then((html) => { prefetched.innerHTML = html; prefetchedEmpty = false; });
      })
      .catch(() => { prefetched.innerHTML = ""; prefetchedEmpty = false; })
      .finally(() => { prefetching = null; });
    return prefetching;
  }

  // `following`: a submit answer that carried the pair after the prefetched one (one round trip per label).
  async function showNext(following) {
    if (prefetching) await prefetching;
    if (prefetched.innerHTML.trim()) {
      slot.innerHTML = prefetched.innerHTML;
      prefetched.innerHTML = "";
    } else if (prefetchedEmpty) {
      const r = await fetch(baseUrl, { credentials: "same-origin" });  // renders "nothing left" (or a newly freed pair)
      const doc = new DOMParser().parseFromString(await r.text(), "text/html");
      slot.innerHTML = doc.getElementById("item-slot").innerHTML;
    } else {
      window.location.reload();
      return;
    }
    shownAt = performance.now();
    window.scrollTo(0, 0);
    if (following && typeof following.next_html === "string") {
      prefetched.innerHTML = following.next_html;
      prefetchedEmpty = !following.next_html.trim();
    } else {
      prefetch();
    }
  }

  function answer() {
    const f = form();
    const picked = f.querySelector('input[name="choice"]:checked');
    const strength = f.querySelector('input[name="strength"]:checked');
    const rationale = f.querySelector('textarea[name="rationale"]');
    const criteria = {};
    f.querySelectorAll("fieldset.criterion").forEach((fs) => {
      const c = fs.querySelector("input:checked");
      if (c) criteria[fs.dataset.criterion] = c.value;
    });
    return {
      choice: picked ? picked.value : "",
      strength: strength ? Number(strength.value) : null,
      rationale: rationale ? rationale.value : "",
      criteria,
      time_on_item_ms: Math.round(performance.now() - shownAt),
    };
  }

  function missing(a) {
    const f = form();
    if (!a.choice) return "Pick an answer first (1, 2, t or b).";
    if (f.dataset.rationale === "required" && !a.rationale.trim()) return "A rationale is required (press c to write it).";
    const left = [...f.querySelectorAll("fieldset.criterion")].filter((fs) => !fs.querySelector("input:checked"));
    if (left.length) return "Give a preference for " + left.map((fs) => fs.dataset.criterion).join(", ") + ".";
    return null;
  }

  async function send(action) {
    const f = form();
    if (!f || busy) return;
    const id = f.dataset.assignment;
    let payload = null;
    if (action === "submit") {
      payload = answer();
      const problem = missing(payload);
      if (problem) { say(problem, "error"); return; }
    }
    busy = true;
    f.classList.add("sending");
    // With a pair prefetched, the answer brings the one after it (one request per label); a prefetch still in
    // flight is waited for first (showing the next pair would wait for it anyway).
    if (action === "submit" && prefetching) await prefetching;
    const aheadForm = prefetched.content.querySelector("form.item");  // a <template>: its children are in .content
    const ahead = action === "submit" && aheadForm ? aheadForm.dataset.assignment : null;
    const query = ahead ? `?next=1&exclude=${encodeURIComponent(ahead)}` : "";
    try {
      // Retries are safe: the server keeps one label per assignment and answers a repeat with the stored one.
      let r = null;
      for (let attempt = 0; attempt < 3; attempt++) {
        try {
          r = await post(`${baseUrl}${id}/${action}/${query}`, payload ? JSON.stringify(payload) : null, !!payload);
          break;
        } catch (e) {
          await new Promise((ok) => setTimeout(ok, 400 * (attempt + 1)));
        }
      }
      if (!r) { say("No connection: your answer is still here, press Enter to try again.", "error"); return; }
      const data = await r.json().catch(() => ({}));
      if (r.ok) {
        say("");
        if (data.created) { done += 1; left = Math.max(left - 1, 0); showCount(); }
        if (data.feedback_html) showFeedback(data.feedback_html);  // practice: Continue (Enter) moves on
        else await showNext(ahead ? data : null);
      } else if (data.code === "expired" || data.code === "already_answered") {
        say(data.message, "warning");
        await showNext();
      } else {
        say(data.message || `Could not save (HTTP ${r.status}).`, "error");
      }
    } finally {
      busy = false;
      if (form()) form().classList.remove("sending");
    }
  }

  // Practice items: the expected answer replaces the pair until the annotator continues.
  const feedback = () => slot.querySelector("#practice-feedback");

  function showFeedback(html) {
    slot.innerHTML = html;
    feedback().focus();
  }

  async function continueAfterFeedback() {
    if (busy) return;
    busy = true;
    try { await showNext(); } finally { busy = false; }
  }

  function pick(name, value) {
    const input = form() && form().querySelector(`input[name="${name}"][value="${value}"]`);
    if (input) { input.checked = true; input.dispatchEvent(new Event("change", { bubbles: true })); }
  }

  function toggleGuidelines() {
    drawer.hidden = !drawer.hidden;
    if (!drawer.hidden) drawer.focus();
  }

  document.getElementById("guidelines-toggle").addEventListener("click", toggleGuidelines);
  slot.addEventListener("submit", (e) => { e.preventDefault(); send("submit"); });
  slot.addEventListener("click", (e) => {
    if (e.target.closest("button.skip")) send("skip");
    else if (e.target.closest("button.continue")) continueAfterFeedback();
  });

  document.addEventListener("keydown", (e) => {
    if (e.ctrlKey || e.metaKey || e.altKey) return;
    const typing = e.target.matches("textarea, input[type=text]");
    if (typing) {
      if (e.key === "Escape") e.target.blur();
      else if (e.key === "Enter" && !e.shiftKey) { e.preventDefault(); send("submit"); }
      return;
    }
    if (e.key === "Escape" && !drawer.hidden) { drawer.hidden = true; return; }
    if (feedback()) {
      if (e.key === "g") toggleGuidelines();
      else if (e.key === "Enter") { e.preventDefault(); continueAfterFeedback(); }
      return;
    }
    if (!form()) return;
    const strengthKeys = "qwer";
    switch (e.key) {
      case "1": case "ArrowLeft": pick("choice", "left"); break;
      case "2": case "ArrowRight": pick("choice", "right"); break;
      case "t": pick("choice", "tie"); break;
      case "b": pick("choice", "both_bad"); break;
      case "s": send("skip"); break;
      case "g": toggleGuidelines(); break;
      case "c": { const t = form().querySelector("textarea"); if (t) { e.preventDefault(); t.focus(); } break; }
      case "Enter":
        if (e.target.matches("button, a")) return;  // let focused buttons/links do their own thing
        e.preventDefault(); send("submit"); break;
      default:
        if (strengthKeys.includes(e.key)) pick("strength", String(strengthKeys.indexOf(e.key) + 1));
        else return;
    }
    if (e.key.startsWith("Arrow")) e.preventDefault();
  });

  prefetch();
  root.dataset.ready = "1";  // keys pressed before this point had no handler (tests wait for it)
})();
