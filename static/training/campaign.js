// Campaign page: polls the campaign's progress while it runs and reloads when a round moves to another stage (or
// the campaign ends), so an admin watches each round advance stage by stage; draws the chart over rounds.
(function () {
  "use strict";
  const status = document.getElementById("campaign-status");
  const url = status.dataset.progressUrl;

  function signature(data) {
    return JSON.stringify([data.state, data.rounds.map((r) => [r.number, r.stage, r.state, r.detail])]);
  }

  function currentSignature() {
    const rows = Array.from(document.querySelectorAll("#round-table tbody tr"));
    return rows.map((tr) => [tr.dataset.round, tr.dataset.stage, tr.dataset.state].join(":")).join("|");
  }

  function shortSignature(data) {
    return data.rounds.map((r) => [r.number, r.stage, r.state].join(":")).join("|");
  }

  let last = null;
  function poll() {
    fetch(url, { credentials: "same-origin" })
      .then((r) => (r.ok ? r.json() : null))
      .then((data) => {
        if (!data) return;
        if (data.state !== status.dataset.state || shortSignature(data) !== currentSignature()) {
          window.location.reload();
          return;
        }
        const now = signature(data);
        if (last !== null && now !== last) {
          document.getElementById("campaign-stage").textContent = data.stage;
        }
        last = now;
        if (data.state === "running") window.setTimeout(poll, 2000);
      })
      .catch(() => window.setTimeout(poll, 5000));
  }
  if (status.dataset.state === "running") window.setTimeout(poll, 2000);

  const figure = document.getElementById("campaign-chart");
  const source = document.getElementById("campaign-chart-data");
  if (!figure || !source || typeof Chart === "undefined") return;
  const data = JSON.parse(source.textContent);
  const line = (label, values, colour, axis) => ({
    label, data: values, borderColor: colour, backgroundColor: colour, yAxisID: axis, spanGaps: true, tension: 0,
  });
  new Chart(figure.querySelector("canvas"), {
    type: "line",
    data: {
      labels: data.rounds.map((r) => `round ${r}`),
      datasets: [
        line("win rate vs base", data.win_rate_vs_base, "hsl(210, 65%, 45%)", "rate"),
        line("LC win rate vs base", data.lc_win_rate_vs_base, "hsl(150, 60%, 35%)", "rate"),
        line("win rate vs previous round", data.win_rate_vs_previous, "hsl(30, 80%, 45%)", "rate"),
        line("mean answer length (chars)", data.mean_answer_chars, "hsl(0, 0%, 50%)", "chars"),
      ],
    },
    options: {
      animation: false,
      plugins: { legend: { position: "bottom" } },
      scales: {
        rate: { type: "linear", position: "left", min: 0, max: 1, title: { display: true, text: "win rate" } },
        chars: { type: "linear", position: "right", grid: { drawOnChartArea: false },
          title: { display: true, text: "characters" } },
      },
    },
  });
})();
