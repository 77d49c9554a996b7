// Simple SVG bar charts: each chart is an image with a text alternative; the same figures are
// always in a table beside it.
const NS = "http://www.w3.org/2000/svg";

function svg(tag, attrs = {}, text) {
  const element = document.createElementNS(NS, tag);
  for (const [k, v] of Object.entries(attrs)) element.setAttribute(k, v);
  if (text !== undefined) element.textContent = text;
  return element;
}

/** items: [{label, value, text}] → a horizontal bar chart. */
export function barChart(items, title) {
  const width = 640;
  const bar = 22;
  const labelWidth = 200;
  const height = items.length * (bar + 8) + 10;
  const max = Math.max(1, ...items.map((i) => i.value));
  const chart = svg("svg", { class: "chart", viewBox: `0 0 ${width} ${height}`, width,
    height, role: "img", "aria-label": title });
  chart.append(svg("title", {}, title));
  items.forEach((item, n) => {
    const y = 5 + n * (bar + 8);
    const length = Math.max(1, ((width - labelWidth - 110) * item.value) / max);
    chart.append(svg("text", { x: labelWidth - 6, y: y + bar * 0.7, "text-anchor": "end" },
      item.label.length > 28 ? item.label.slice(0, 27) + "…" : item.label));
    chart.append(svg("rect", { class: "bar", x: labelWidth, y, width: length, height: bar }));
    chart.append(svg("text", { x: labelWidth + length + 6, y: y + bar * 0.7 }, item.text));
  });
  return chart;
}
