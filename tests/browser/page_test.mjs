// SPDX-License-Identifier: Apache-2.0
// The web page in headless Chromium (Debian's, driven by playwright-core): the map renders with
// points and cluster labels, a search for a topic shows results lit up on the map, "similar"
// lists similar articles, a click on a point opens the side panel with its neighbours, a link
// with the state in its query string reopens that view, and the console stays free of errors.
//
//   node page_test.mjs --url http://127.0.0.1:PORT --query cocoa --topic cocoa --shots DIR
//
// Prints one "ok: ..." line per check and exits 0, or prints "FAIL: ..." and exits 1. Run by
// tests/integration/issue_25_browser_test.cpp on the Reuters articles.
import { createRequire } from "node:module";
import { mkdirSync } from "node:fs";
import path from "node:path";

function arg(name, fallback) {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 && i + 1 < process.argv.length ? process.argv[i + 1] : fallback;
}
const url = arg("url");
const query = arg("query", "cocoa");
const topic = arg("topic", "cocoa");
const shots = arg("shots", "");
const modules = arg("modules", "");  // the node_modules holding playwright-core
const chromiumPath = arg("chromium", "/usr/bin/chromium");
if (!url || !modules) {
  console.error("usage: node page_test.mjs --url URL --modules NODE_MODULES [--query Q] [--topic T] [--shots DIR] [--chromium PATH]");
  process.exit(2);
}
const require = createRequire(path.join(modules, "noop.js"));
const { chromium } = require("playwright-core");

const problems = [];
function check(ok, what) {
  if (ok) console.log(`ok: ${what}`);
  else { console.log(`FAIL: ${what}`); problems.push(what); }
}

const browser = await chromium.launch({
  executablePath: chromiumPath,
  headless: true,
  args: ["--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"],
});
const consoleErrors = [];
try {
  const page = await browser.newPage({ viewport: { width: 1500, height: 900 } });
  page.on("console", (m) => { if (m.type() === "error") consoleErrors.push(`console: ${m.text()}`); });
  page.on("pageerror", (e) => consoleErrors.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => consoleErrors.push(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  const shot = async (name) => {
    if (!shots) return;
    mkdirSync(shots, { recursive: true });
    await page.screenshot({ path: path.join(shots, `${name}.png`) });
  };

  // The map.
  await page.goto(url);
  await page.waitForSelector("body[data-map=ready]", { timeout: 120000 });
  await page.waitForFunction(() => Number(document.getElementById("map").dataset.points) > 0);
  const drawn = await page.$eval("#map", (c) => ({ ...c.dataset }));
  const count = await page.evaluate(() => window.vstoreMap.n);
  check(Number(drawn.points) === count && count > 0, `the map draws all ${count} points`);
  check(Number(drawn.labels) >= 3, `cluster labels are drawn (${drawn.labels})`);
  // Points really reached the canvas: count pixels that are not the white background.
  const painted = await page.$eval("#map", (c) => {
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 0; i < d.length; i += 4) if (d[i] < 240 || d[i + 1] < 240 || d[i + 2] < 240) n++;
    return n;
  });
  check(painted > 5000, `the canvas is painted (${painted} non-background pixels)`);
  const legend = await page.$$eval("#legend li", (lis) => lis.map((l) => l.textContent));
  check(legend.length >= 3, `the legend names the clusters: ${legend.slice(0, 3).join(" | ")}`);
  const status = await page.textContent("#map-status");
  check(/articles, \d+ clusters/.test(status), `the map's status line: ${status}`);
  // Hovering shows a title, not raw JSON.
  const first = await page.evaluate(() => window.vstoreMap.data.points.id[0]);
  const at = await page.evaluate((id) => window.vstoreMap.screenOf(id), first);
  await page.mouse.move(at.x, at.y);
  await page.waitForSelector("#tooltip:not([hidden])", { timeout: 5000 });
  const tip = await page.textContent("#tooltip");
  check(tip.length > 0 && !tip.trim().startsWith("{"), `hover shows a title: "${tip.slice(0, 60)}"`);
  await shot("map");

  // Colour by a metadata field.
  await page.selectOption("#color", "topic");
  await page.waitForFunction(() => new URLSearchParams(location.search).get("color") === "topic");
  const topicLegend = await page.$$eval("#legend li", (lis) => lis.map((l) => l.textContent));
  check(topicLegend.some((l) => l.startsWith("earn") || l.startsWith("acq")), `colour by topic: ${topicLegend.slice(0, 3).join(" | ")}`);
  await page.selectOption("#color", "cluster");

  // Search for a topic, with the topic filter.
  await page.fill("#q", query);
  await page.fill("#topic", topic);
  await page.click("#search button[type=submit]");
  await page.waitForFunction(() => document.querySelectorAll("#results li").length > 0, null, { timeout: 30000 });
  const results = await page.$$eval("#results li", (lis) => lis.map((l) => ({
    title: l.querySelector(".r-title").textContent,
    topic: l.querySelector(".r-topic").textContent,
    source: l.querySelector(".r-source").textContent,
    date: l.querySelector(".r-date").textContent,
    score: l.querySelector(".r-score").textContent,
  })));
  check(results.length > 0 && results.every((r) => r.topic === topic), `search "${query}" with topic ${topic}: ${results.length} results, all ${topic}`);
  check(results.every((r) => r.title && r.source && /^\d{4}-\d\d-\d\d$/.test(r.date) && /^distance \d/.test(r.score)),
    `each result shows title, source, date and score ("${results[0].title}", ${results[0].source}, ${results[0].date}, ${results[0].score})`);
  const lit = await page.$eval("#map", (c) => Number(c.dataset.lit));
  check(lit === results.length, `the results are lit up on the map (${lit})`);
  const search = new URLSearchParams(new URL(page.url()).search);
  check(search.get("q") === query && search.get("topic") === topic, `the URL keeps the query and filter: ${page.url()}`);
  await shot("search");

  // Similar articles of the first result.
  await page.click("#results li:first-child .r-similar");
  await page.waitForFunction(() => document.getElementById("results-title").textContent.startsWith("Similar to"), null, { timeout: 30000 });
  const similar = await page.$$eval("#results li", (lis) => lis.length);
  check(similar > 0, `"similar" lists ${similar} articles similar to "${results[0].title}"`);

  // A click on a point opens the side panel and lights up its neighbours.
  await page.click("#panel-close").catch(() => {});
  const target = await page.evaluate(() => {
    const m = window.vstoreMap;
    // a point away from the edges, so that it is on screen
    for (let i = 0; i < m.n; i++) {
      const s = m.screenOf(m.data.points.id[i]);
      const r = m.canvas.getBoundingClientRect();
      if (s.x > r.left + 50 && s.x < r.right - 50 && s.y > r.top + 50 && s.y < r.bottom - 50) return s;
    }
    return null;
  });
  check(target !== null, "a point is on screen to click");
  await page.mouse.click(target.x, target.y);
  await page.waitForSelector("#panel:not([hidden])", { timeout: 10000 });
  await page.waitForFunction(() => document.querySelectorAll("#panel-neighbours li").length > 0, null, { timeout: 30000 });
  const panelTitle = await page.textContent("#panel-title");
  const panelMeta = await page.textContent("#panel-meta");
  const neighbours = await page.$eval("#map", (c) => Number(c.dataset.neighbours));
  check(panelTitle.length > 0 && panelMeta.includes("reuters21578:"), `the side panel shows "${panelTitle}" (${panelMeta})`);
  check(neighbours > 0, `its ${neighbours} neighbours are highlighted on the map`);
  check(new URL(page.url()).searchParams.has("uri"), "the URL keeps the open article");
  await shot("panel");

  // A link with the state reopens the view.
  const link = `${url}/?q=${encodeURIComponent(query)}&topic=${encodeURIComponent(topic)}&color=topic`;
  await page.goto(link);
  await page.waitForFunction(() => document.querySelectorAll("#results li").length > 0, null, { timeout: 30000 });
  const restored = await page.evaluate(() => ({ q: document.getElementById("q").value, topic: document.getElementById("topic").value }));
  check(restored.q === query && restored.topic === topic, `the link ${link} restores the query and the filter`);
  await page.waitForSelector("body[data-map=ready]", { timeout: 120000 });
  check(await page.$eval("#color", (s) => s.value) === "topic", "the link restores the colouring");

  // Pan and zoom keep working.
  const before = await page.evaluate(() => ({ ...window.vstoreMap.view }));
  const box = await page.$eval("#map", (c) => { const r = c.getBoundingClientRect(); return { x: r.left + r.width / 2, y: r.top + r.height / 2 }; });
  await page.mouse.move(box.x, box.y);
  await page.mouse.wheel(0, -400);
  await page.mouse.down();
  await page.mouse.move(box.x + 80, box.y + 40, { steps: 4 });
  await page.mouse.up();
  const after = await page.evaluate(() => ({ ...window.vstoreMap.view }));
  check(after.scale > before.scale && after.tx !== before.tx, `zoom (${before.scale.toFixed(2)} -> ${after.scale.toFixed(2)}) and pan`);
} finally {
  await browser.close();
}
check(consoleErrors.length === 0, `no console errors${consoleErrors.length ? `: ${consoleErrors.join("; ")}` : ""}`);
if (problems.length) {
  console.log(`FAIL: ${problems.length} check(s) failed`);
  process.exit(1);
}
console.log("ok: all checks passed");
