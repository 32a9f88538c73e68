// An evaluation's page follows it while it runs: its runs' counts every 2 s, a reload when its state changes.
(() => {
  const box = document.getElementById("evaluation-status");
  if (!box) return;
  const url = box.dataset.progressUrl;
  const shown = box.dataset.state;
  const live = ["generating", "judging"];
  if (!live.includes(shown)) return;

  async function poll() {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const p = await response.json();
        if (p.state !== shown) { window.location.reload(); return; }
        for (const name of ["tuned_run", "baseline_run", "judge_run"]) {
          const cell = document.getElementById(`${name}-done`);
          if (cell && p[name]) cell.textContent = p[name].done;
        }
      }
    } catch (e) { /* a missed poll is retried */ }
    setTimeout(poll, 2000);
  }
  setTimeout(poll, 2000);
})();
