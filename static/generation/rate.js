// Arbiter: rating one response at a time from the keyboard. ↑/u good, ↓/d bad, s skip, 1-5 stars (optional).
// The form posts once: a second key press while it is on its way does nothing (the server also keeps one rating).
(function () {
  "use strict";
  const form = document.getElementById("rate-form");
  if (!form) return;
  const shownAt = performance.now();
  let sent = false;
  function submit(choice) {
    if (sent) return;
    sent = true;
    form.querySelector('input[name="time_ms"]').value = String(Math.round(performance.now() - shownAt));
    form.requestSubmit(form.querySelector(`button[value="${choice}"]`));
  }
  form.addEventListener("submit", () => { sent = true; });
  document.addEventListener("keydown", (event) => {
    if (event.ctrlKey || event.metaKey || event.altKey || event.target.tagName === "TEXTAREA") return;
    const key = event.key;
    if (key === "ArrowUp" || key === "u") submit("up");
    else if (key === "ArrowDown" || key === "d") submit("down");
    else if (key === "s") submit("skip");
    else if ("12345".includes(key) && key.length === 1) {
      form.querySelector(`input[name="stars"][value="${key}"]`).checked = true;
    } else return;
    event.preventDefault();
  });
  form.dataset.ready = "1";  // keys work from here on (tests wait for this)
})();
