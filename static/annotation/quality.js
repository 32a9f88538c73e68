// Quality dashboard charts (Chart.js + chartjs-chart-matrix from npm). Data comes from a json_script tag.
(function () {
  "use strict";
  const data = JSON.parse(document.getElementById("quality-data").textContent);
  const names = data.heatmap.annotators;
  // Red (no agreement or worse) to green (perfect agreement); grey where kappa is undefined.
  const colour = (v) => {
    if (v === null) return "rgba(160,160,160,0.4)";
    const t = Math.max(0, Math.min(1, v));
    return `rgba(${Math.round(200 * (1 - t))},${Math.round(160 * t + 40)},80,0.85)`;
  };
  const cells = [];
  data.heatmap.cells.forEach((c) => {
    cells.push(c);
    cells.push({ x: c.y, y: c.x, v: c.v, n: c.n });  // symmetric
  });
  names.forEach((n) => cells.push({ x: n, y: n, v: 1, n: null }));
  const heatmap = new Chart(document.getElementById("kappa-heatmap"), {
    type: "matrix",
    data: {
      datasets: [{
        label: "Cohen's kappa",
        data: cells,
        backgroundColor: (ctx) => colour(ctx.raw ? ctx.raw.v : null),
        width: ({ chart }) => (chart.chartArea || {}).width / Math.max(names.length, 1) - 2,
        height: ({ chart }) => (chart.chartArea || {}).height / Math.max(names.length, 1) - 2,
      }],
    },
    options: {
      animation: false,
      plugins: {
        legend: { display: false },
        tooltip: {
          callbacks: {
            title: (items) => `${items[0].raw.x} ~ ${items[0].raw.y}`,
            label: (item) => (item.raw.n === null ? "same annotator" :
              `kappa ${item.raw.v === null ? "undefined" : item.raw.v.toFixed(3)} on ${item.raw.n} shared pairs`),
          },
        },
      },
      scales: {
        x: { type: "category", labels: names, offset: true, grid: { display: false } },
        y: { type: "category", labels: names, offset: true, grid: { display: false } },
      },
    },
  });
  const sides = data.sides.filter((s) => s.left !== null);
  const bars = new Chart(document.getElementById("left-pick"), {
    type: "bar",
    data: {
      labels: sides.map((s) => s.name),
      datasets: [{ label: "left picked", data: sides.map((s) => 100 * s.left), backgroundColor: "rgba(36,86,214,0.7)" }],
    },
    options: { animation: false, scales: { y: { min: 0, max: 100, title: { display: true, text: "% of decisive labels" } } } },
  });
  // Series hold the last points only; `start` is the index of the first one among the annotator's answers.
  const points = (d) => d.series.map((v, i) => ({ x: (d.start || 0) + i + 1, y: 100 * v }));
  const driftCanvas = document.getElementById("gold-drift");
  if (driftCanvas) {
    new Chart(driftCanvas, {
      type: "line",
      data: { datasets: data.drift.map((d) => ({ label: d.name, data: points(d), tension: 0.2, pointRadius: 0 })) },
      options: {
        animation: false,
        scales: {
          x: { type: "linear", title: { display: true, text: "calibration answers" } },
          y: { min: 0, max: 100, title: { display: true, text: "% correct, rolling" } },
        },
      },
    });
    driftCanvas.dataset.ready = "1";
  }
  // One sparkline per annotator row: the same rolling series, no axes.
  const byName = Object.fromEntries(data.drift.map((d) => [d.name, d]));
  document.querySelectorAll("canvas.sparkline").forEach((canvas) => {
    const d = byName[canvas.dataset.annotator];
    if (!d) return;
    new Chart(canvas, {
      type: "line",
      data: { datasets: [{ data: points(d), borderWidth: 1.5, pointRadius: 0, tension: 0.2, borderColor: "rgb(36,86,214)" }] },
      options: {
        animation: false, responsive: false, events: [],
        plugins: { legend: { display: false }, tooltip: { enabled: false } },
        scales: { x: { type: "linear", display: false }, y: { min: 0, max: 100, display: false } },
      },
    });
    canvas.dataset.ready = "1";
  });
  document.getElementById("kappa-heatmap").dataset.ready = heatmap ? "1" : "";
  document.getElementById("left-pick").dataset.ready = bars ? "1" : "";
})();
