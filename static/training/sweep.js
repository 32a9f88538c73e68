// Sweep page: each logged series overlaid across the sweep's runs (one Chart.js line chart per series, one line per
// run) and the β–KL scatter; polled while the sweep runs, the page reloads when a run changes state.
(function () {
  "use strict";
  const status = document.getElementById("sweep-status");
  const url = status.dataset.progressUrl;
  const charts = document.getElementById("sweep-charts");
  const NAMES = ["loss", "rewards/margins", "rewards/accuracies", "kl_estimate", "logps/chosen", "answer_tokens"];
  const made = {};
  let betaKl = null;
  let states = null;

  function colour(i) { return `hsl(${(i * 137) % 360}, 65%, 45%)`; }

  function lineChart(name) {
    if (made[name]) return made[name];
    const figure = document.createElement("figure");
    figure.className = "chart";
    figure.dataset.series = name;
    figure.innerHTML = "<figcaption></figcaption><canvas></canvas>";
    figure.querySelector("figcaption").textContent = name;
    charts.appendChild(figure);
    made[name] = new Chart(figure.querySelector("canvas"), {
      type: "line",
      data: { datasets: [] },
      options: { animation: false, parsing: false, plugins: { legend: { position: "bottom" } },
        scales: { x: { type: "linear", title: { display: true, text: "step" } } } },
    });
    return made[name];
  }

  function draw(data) {
    NAMES.forEach((name) => {
      const runs = data.runs.filter((r) => r.series[name] && r.series[name].length);
      if (!runs.length) return;
      const chart = lineChart(name);
      chart.data.datasets = runs.map((r) => ({
        label: r.label, data: r.series[name].map(([x, y]) => ({ x, y })), pointRadius: 1, borderWidth: 1.5,
        borderColor: colour(data.runs.indexOf(r)), backgroundColor: colour(data.runs.indexOf(r)), tension: 0,
      }));
      chart.update();
    });
    const points = data.beta_kl.map((p) => ({ x: p.beta, y: p.kl, label: p.label }));
    if (!betaKl) {
      betaKl = new Chart(document.querySelector("#beta-kl canvas"), {
        type: "scatter",
        data: { datasets: [{ label: "runs", data: points, pointRadius: 5 }] },
        options: { animation: false, plugins: { legend: { display: false },
          tooltip: { callbacks: { label: (c) => `${c.raw.label}: β ${c.raw.x}, KL ${c.raw.y.toFixed(3)}` } } },
          scales: { x: { type: "logarithmic", title: { display: true, text: "β" } },
                    y: { title: { display: true, text: "KL from the base (nats)" } } } },
      });
    } else {
      betaKl.data.datasets[0].data = points;
      betaKl.update();
    }
  }

  async function poll() {
    try {
      const response = await fetch(url, { headers: { Accept: "application/json" } });
      if (response.ok) {
        const data = await response.json();
        draw(data);
        const now = data.state + "|" + data.runs.map((r) => r.state).join(",");
        if (states !== null && now !== states) { window.location.reload(); return; }
        states = now;
        if (!data.live) return;
      }
    } catch (e) { /* a missed poll is retried */ }
    setTimeout(poll, 3000);
  }

  const initial = JSON.parse(document.getElementById("sweep-curves").textContent);
  draw(initial);
  states = initial.state + "|" + initial.runs.map((r) => r.state).join(",");
  if (initial.live) setTimeout(poll, 3000);
})();
