// The console's only script (no inline script: the page's CSP stays strict). htmx and Chart.js are
// served by certq from its own node_modules, loaded before this file.
/* global htmx, Chart */
(() => {
  // Refusals (403 for the viewer, 409 for an order that moved on) are messages to show, not failures.
  htmx.config.responseHandling = [
    { code: '204', swap: false },
    { code: '[23]..', swap: true },
    { code: '4..', swap: true, error: false },
    { code: '...', swap: true, error: true },
  ];

  const section = document.querySelector('[data-charts]');
  if (!section) return;
  const palette = {
    issued: '#2e7d32',
    failed: '#c62828',
    expiring: '#1565c0',
    waiting: '#6a1b9a',
    delayed: '#ef6c00',
    active: '#00838f',
  };
  const common = {
    animation: false,
    responsive: true,
    maintainAspectRatio: false,
    plugins: { legend: { position: 'bottom' } },
  };
  let charts;

  function create(data) {
    const expiring = new Chart(document.getElementById('chart-expiring'), {
      type: 'bar',
      data: {
        labels: data.expiring.labels,
        datasets: [{ label: 'certificates', data: data.expiring.counts, backgroundColor: palette.expiring }],
      },
      options: { ...common, scales: { x: { ticks: { maxTicksLimit: 12 } }, y: { beginAtZero: true } } },
    });
    const outcomes = new Chart(document.getElementById('chart-outcomes'), {
      type: 'bar',
      data: {
        labels: data.outcomes.labels,
        datasets: [
          { label: 'issued', data: data.outcomes.issued, backgroundColor: palette.issued, stack: 'o' },
          { label: 'failed', data: data.outcomes.failed, backgroundColor: palette.failed, stack: 'o' },
        ],
      },
      options: {
        ...common,
        scales: {
          x: { stacked: true, ticks: { maxTicksLimit: 14 } },
          y: { stacked: true, beginAtZero: true },
        },
      },
    });
    const queues = new Chart(document.getElementById('chart-queues'), {
      type: 'bar',
      data: {
        labels: data.queues.map((q) => q.name),
        datasets: ['waiting', 'delayed', 'active'].map((key) => ({
          label: key,
          data: data.queues.map((q) => q[key]),
          backgroundColor: palette[key],
          stack: 'q',
        })),
      },
      options: {
        ...common,
        indexAxis: 'y',
        scales: { x: { stacked: true, beginAtZero: true }, y: { stacked: true } },
      },
    });
    return { expiring, outcomes, queues };
  }

  function update(data) {
    charts.expiring.data.labels = data.expiring.labels;
    charts.expiring.data.datasets[0].data = data.expiring.counts;
    charts.outcomes.data.labels = data.outcomes.labels;
    charts.outcomes.data.datasets[0].data = data.outcomes.issued;
    charts.outcomes.data.datasets[1].data = data.outcomes.failed;
    charts.queues.data.labels = data.queues.map((q) => q.name);
    ['waiting', 'delayed', 'active'].forEach((key, i) => {
      charts.queues.data.datasets[i].data = data.queues.map((q) => q[key]);
    });
    for (const chart of Object.values(charts)) chart.update();
  }

  async function refresh() {
    try {
      const response = await fetch(section.dataset.charts, { credentials: 'same-origin' });
      if (!response.ok) return;
      const data = await response.json();
      const expired = section.querySelector('.expired');
      if (expired)
        expired.textContent = data.expiring.alreadyExpired
          ? `(${data.expiring.alreadyExpired} already expired)`
          : '';
      if (charts) update(data);
      else charts = create(data);
      section.dataset.ready = 'true';
    } catch {
      // the next refresh tries again
    }
  }
  refresh();
  setInterval(refresh, 10_000);
})();
