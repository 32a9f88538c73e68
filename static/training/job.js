// Training job page: one Chart.js line chart per logged series, polled live while the job runs.
(function () {
  "use strict";
  const status = document.getElementById("job-status");
  const url = status.dataset.progressUrl;
  let progress = JSON.parse(document.getElementById("job-progress").textContent);
  const charts = {};
  let lastStep = -1;

  function chartFor(name) {
    if (charts[name]) return charts[name];
    const figure = document.querySelector(`figure[data-series="${CSS.escape(name)}"]`);
    if (!figure) return null;
    figure.hidden = false;
    charts[name] = new Chart(figure.querySelector("canvas"), {
      type: "line",
      data: { labels: [], datasets: [{ label: name, data: [], pointRadius: 1, borderWidth: 1.5, tension: 0 }] },
      options: { animation: false, parsing: false, plugins: { legend: { display: false } },
        scales: { x: { type: "linear", title: { display: true, text: "step" } } } },
    });
    return charts[name];
  }

  function addMetrics(rows) {
    rows.forEach((row) => {
      Object.entries(row).forEach(([name, value]) => {
        if (name === "step" || name === "epoch" || typeof value !== "number") return;
        const chart = chartFor(name);
        if (chart) chart.data.datasets[0].data.push({ x: row.step, y: value });
      });
      lastStep = Math.max(lastStep, row.step);
    });
    Object.values(charts).forEach((c) => c.update());
  }

  function eta(seconds) {
    if (seconds === null || seconds === undefined) return "–";
    const s = Math.round(seconds);
    return s >= 3600 ? `${Math.floor(s / 3600)} h ${Math.round((s % 3600) / 60)} min`
      : s >= 60 ? `${Math.floor(s / 60)} min ${s % 60} s` : `${s} s`;
  }

  function show(p) {
    document.getElementById("job-state").textContent = p.state;
    document.getElementById("job-stage").textContent = p.stage;
    document.getElementById("job-step").textContent = p.step;
    document.getElementById("job-eta").textContent = eta(p.eta_s);
    const bar = document.getElementById("job-bar");
    bar.max = Math.max(p.max_steps, 1);
    bar.value = p.step;
    const max = document.getElementById("job-max-steps");
    if (max) max.textContent = p.max_steps;
    const error = document.getElementById("job-error");
    error.hidden = !p.error;
    error.textContent = p.error;
    document.getElementById("job-log").textContent = p.log_tail;
    showAlarms(p.alarms || []);
  }

  function showAlarms(alarms) {
    const table = document.getElementById("alarm-table");
    if (!table) return;
    table.hidden = !alarms.length;
    document.getElementById("no-alarms").hidden = alarms.length > 0;
    const body = table.querySelector("tbody");
    body.replaceChildren(...alarms.map((a) => {
      const row = document.createElement("tr");
      row.className = `alarm-${a.policy}`;
      [a.step, a.title, a.value, a.threshold, a.policy, a.advice].forEach((v) => {
        const cell = document.createElement("td");
        cell.textContent = v;
        row.appendChild(cell);
      });
      return row;
    }));
  }

  async function poll() {
    try {
      const response = await fetch(`${url}?after=${lastStep}`, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const p = await response.json();
        addMetrics(p.metrics);
        show(p);
        if (!p.live) { window.location.reload(); return; }  // finished: show the evaluation and artifacts
      }
    } catch (e) { /* a missed poll is retried */ }
    setTimeout(poll, 2000);
  }

  addMetrics(progress.metrics);
  show(progress);
  if (progress.live) setTimeout(poll, 2000);
})();
