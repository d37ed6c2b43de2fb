// sketchsearch page: draw a sketch (or drop a photo) and show the gallery's nearest items.
// Plain browser JavaScript with no build step and nothing fetched from elsewhere, so the page
// works offline. The API it calls is described at /docs.
"use strict";

const SEARCH_URL = "/v1/search?k=12";
const THROTTLE_MS = 300; // at most one search every 300 ms while a stroke is being drawn
const KEY_STORAGE = "sketchsearch.apiKey";
// Types the service decodes by name; any other file goes as octet-stream and is sniffed there.
const KNOWN_TYPES = ["image/png", "image/jpeg", "image/webp", "image/bmp", "image/tiff"];

const $ = (id) => document.getElementById(id);
const canvas = $("sketch");
const ctx = canvas.getContext("2d", { willReadFrequently: true });

// ---- drawing ---------------------------------------------------------------------------
// Strokes are kept as data (not only as pixels) so that undo can redraw everything left.
const strokes = [];
let current = null; // the stroke under the pointer, with the pointerId that draws it
let erasing = false;
let lastSent = 0;

function styleFor(stroke) {
  // Sketches are black on white, so the eraser is simply a white pen.
  ctx.strokeStyle = ctx.fillStyle = stroke.erase ? "#fff" : "#000";
  ctx.lineWidth = stroke.width;
  ctx.lineCap = "round";
  ctx.lineJoin = "round";
}

function drawStroke(stroke) {
  styleFor(stroke);
  const [first, ...rest] = stroke.points;
  if (rest.length === 0) {
    // A tap leaves a dot: a path of one point would draw nothing.
    ctx.beginPath();
    ctx.arc(first[0], first[1], stroke.width / 2, 0, 2 * Math.PI);
    ctx.fill();
    return;
  }
  ctx.beginPath();
  ctx.moveTo(first[0], first[1]);
  for (const [x, y] of rest) ctx.lineTo(x, y);
  ctx.stroke();
}

function redraw() {
  // The white background is painted, not left transparent: the PNG must be black on white.
  ctx.fillStyle = "#fff";
  ctx.fillRect(0, 0, canvas.width, canvas.height);
  strokes.forEach(drawStroke);
}

function canvasPoint(event) {
  // The canvas is scaled by CSS to fit the screen; strokes live in its own pixel grid.
  const box = canvas.getBoundingClientRect();
  return [
    ((event.clientX - box.left) * canvas.width) / box.width,
    ((event.clientY - box.top) * canvas.height) / box.height,
  ];
}

function isBlank() {
  // Pixels, not stroke counts: strokes erased away leave an empty canvas too.
  const data = ctx.getImageData(0, 0, canvas.width, canvas.height).data;
  for (let i = 0; i < data.length; i += 4) {
    if (data[i] < 250 || data[i + 1] < 250 || data[i + 2] < 250) return false;
  }
  return true;
}

canvas.addEventListener("pointerdown", (event) => {
  if (event.pointerType === "mouse" && event.button !== 0) return;
  if (current) return; // a second finger does not start a second stroke
  event.preventDefault();
  // Capture keeps the stroke ours when the pointer leaves the canvas mid-line.
  canvas.setPointerCapture(event.pointerId);
  const width = Number($("pen-width").value) * (erasing ? 3 : 1);
  current = { id: event.pointerId, erase: erasing, width, points: [canvasPoint(event)] };
  strokes.push(current);
  drawStroke(current);
});

canvas.addEventListener("pointermove", (event) => {
  if (!current || event.pointerId !== current.id) return;
  // Coalesced events keep fast pen strokes smooth where the browser merges moves per frame.
  const events = event.getCoalescedEvents ? event.getCoalescedEvents() : [];
  for (const e of events.length ? events : [event]) {
    const previous = current.points[current.points.length - 1];
    const point = canvasPoint(e);
    current.points.push(point);
    styleFor(current);
    ctx.beginPath();
    ctx.moveTo(previous[0], previous[1]);
    ctx.lineTo(point[0], point[1]);
    ctx.stroke();
  }
  if (performance.now() - lastSent >= THROTTLE_MS) searchSketch();
});

function endStroke(event) {
  if (!current || event.pointerId !== current.id) return;
  current = null;
  searchSketch();
}
canvas.addEventListener("pointerup", endStroke);
canvas.addEventListener("pointercancel", endStroke);

$("eraser").addEventListener("click", () => {
  erasing = !erasing;
  $("eraser").setAttribute("aria-pressed", String(erasing));
});

function undo() {
  if (current || strokes.length === 0) return;
  strokes.pop();
  redraw();
  searchSketch();
}
$("undo").addEventListener("click", undo);
document.addEventListener("keydown", (event) => {
  if (event.target instanceof HTMLInputElement) return; // the key field has its own undo
  if ((event.ctrlKey || event.metaKey) && event.key === "z") {
    event.preventDefault();
    undo();
  }
});

$("clear").addEventListener("click", () => {
  strokes.length = 0;
  current = null;
  redraw();
  searchSketch(); // a blank canvas: cancels what is in flight and forgets the last query
});

// ---- searching -------------------------------------------------------------------------
// Every query gets a sequence number, and at most ONE search request is in flight. While it
// is, the newest sketch waits (each newer one replaces it) and is sent when the answer or
// error arrives. Aborting the old request at every throttle tick instead would mean that with
// a model slower than the throttle no mid-stroke answer ever arrives (each is cancelled by
// the next tick), and an aborted request still costs the server: the upload is read and the
// image decoded before the server can see that nobody waits for it. Requests are aborted only when a
// new query replaces the sketch (the canvas is cleared, a photo is chosen): that answer
// could never be shown. Answers only move forward: an answer for an older sequence than the
// newest one sent (an aborted request's, arriving late) is ignored.
let sequence = 0; // the newest query's number
let newestSent = 0; // the number of the newest query sent to the server
let active = null; // { mine, controller } of the request in flight, or null
let waiting = null; // the newest sketch, held back while a request is in flight
let retryTimer = null; // set while a 503's Retry-After is waited out
let lastQuery = null; // the newest query, to send again once a refused key is given
let searches = 0;
let requests = 0;
// The sequence numbers of the answers shown, in order (the newest 100): tests check that
// they only ever increase, i.e. that a late answer never replaced a newer one.
const renders = (window.sketchsearchRenders = []);

// body.dataset.sequence is the newest query's number and body.dataset.shown the number of the
// query whose answer is on screen: equal means the page has settled (tests wait on that).
function nextSequence() {
  sequence += 1;
  document.body.dataset.sequence = String(sequence);
  return sequence;
}

function shown(mine) {
  document.body.dataset.shown = String(mine);
}

function authHeaders() {
  const key = sessionStorage.getItem(KEY_STORAGE);
  return key ? { Authorization: `Bearer ${key}` } : {};
}

function setStatus(text, isError = false) {
  $("status").textContent = text;
  $("status").classList.toggle("error", isError);
}

function searchSketch() {
  lastSent = performance.now();
  const mine = nextSequence();
  if (isBlank()) {
    // Nothing to search for: drop what is in flight or waiting and empty the grid. The last
    // query goes too: a key entered later must not search for a sketch no longer drawn.
    cancel();
    lastQuery = null;
    showResults(null);
    setStatus("Draw something to search.");
    shown(mine);
    return;
  }
  canvas.toBlob((blob) => {
    // toBlob is asynchronous: a newer stroke may have been queued meanwhile.
    if (mine !== sequence || !blob) return;
    submit({ mine, body: blob, type: "image/png", what: "your sketch" });
  }, "image/png");
}

function searchFile(file) {
  if (!file) return;
  const type = KNOWN_TYPES.includes(file.type) ? file.type : "application/octet-stream";
  // A photo replaces the sketch as the query: what is in flight for the sketch is aborted.
  cancel();
  submit({ mine: nextSequence(), body: file, type, what: file.name || "photo" });
}

function submit(query) {
  lastQuery = query;
  if (active || retryTimer !== null) {
    waiting = query; // sent when the request in flight is answered (or the retry is due)
    return;
  }
  send(query);
}

function cancel() {
  if (active) active.controller.abort();
  active = null;
  waiting = null;
  clearTimeout(retryTimer);
  retryTimer = null;
}

async function send(query) {
  const me = { mine: query.mine, controller: new AbortController() };
  active = me;
  newestSent = Math.max(newestSent, query.mine);
  document.body.dataset.requests = String(++requests);
  let outcome;
  try {
    const response = await fetch(SEARCH_URL, {
      method: "POST",
      body: query.body,
      headers: { "Content-Type": query.type, ...authHeaders() },
      signal: me.controller.signal,
    });
    outcome = { response, answer: await response.json() };
  } catch (error) {
    outcome = { error };
  }
  if (active !== me) return; // aborted: a newer query (cleared canvas, photo) replaced it
  active = null;
  // One request at a time makes this the newest sent; the check keeps "an answer older than
  // the newest query sent is never shown" true whatever reaches this point.
  if (query.mine >= newestSent) present(query, outcome);
  if (waiting && retryTimer === null) {
    const next = waiting;
    waiting = null;
    send(next);
  }
}

function present(query, { response, answer, error }) {
  const { mine, what } = query;
  if (error) {
    setStatus(`Search failed: ${error.message}`, true);
    markStale();
    shown(mine); // the failure is this query's answer
    return;
  }
  if (response.status === 503 && ["overloaded", "not_ready"].includes(answer.kind)) {
    // The server is busy or warming up, not broken: ask again once it says to, with the
    // newest query (a sketch drawn meanwhile waits for the retry too).
    const seconds = Number(response.headers.get("Retry-After")) || 1;
    const why = answer.kind === "not_ready" ? "Server warming up" : "Server busy";
    setStatus(`${why}; retrying in ${seconds} s…`);
    markStale();
    retryTimer = setTimeout(() => {
      retryTimer = null;
      const next = waiting || (mine === sequence ? query : null);
      waiting = null;
      if (next) send(next);
    }, seconds * 1000);
    return;
  }
  if (response.status === 401) askForKey(answer.error);
  if (!response.ok) {
    if (response.status !== 401) {
      setStatus(answer.error || `Search failed (HTTP ${response.status})`, true);
    }
    markStale();
    shown(mine);
    return;
  }
  showResults(answer);
  renders.push(mine);
  if (renders.length > 100) renders.shift();
  noteGallery(answer.gallery);
  const ms = answer.timings_ms ? ` in ${Math.round(answer.timings_ms.total)} ms` : "";
  setStatus(`${answer.results.length} results for ${what}${ms}.`);
  document.body.dataset.searches = String(++searches);
  shown(mine);
}

// ---- results ---------------------------------------------------------------------------
// Object URLs of the images shown now; revoked when the grid is replaced, or they leak.
let objectUrls = [];
// The shown grid's image fetches (with a key), aborted when a newer grid replaces it: a
// quick succession of answers would otherwise keep downloading thumbnails nobody sees.
let gridImages = new AbortController();

async function loadImage(img, url, signal, urls) {
  // An <img src> cannot send the Authorization header, so with a key the bytes come as a blob.
  if (!sessionStorage.getItem(KEY_STORAGE)) {
    img.src = url;
    return;
  }
  try {
    const response = await fetch(url, { headers: authHeaders(), signal });
    if (!response.ok) {
      img.alt = `${img.alt} (image not loaded: HTTP ${response.status})`;
      return;
    }
    const blob = await response.blob();
    if (signal.aborted) return; // its grid was replaced while the bytes arrived
    const objectUrl = URL.createObjectURL(blob);
    urls.push(objectUrl);
    img.src = objectUrl;
  } catch (error) {
    if (error.name !== "AbortError") img.alt = `${img.alt} (image not loaded: ${error.message})`;
  }
}

function markStale() {
  // The newest query has no answer (it failed, or waits for a retry): the grid on screen
  // belongs to an earlier one and must not look current.
  if ($("results").children.length === 0) return;
  $("results").classList.add("stale");
  $("stale").hidden = false;
  $("verdict").hidden = true;
}

function showResults(answer) {
  gridImages.abort();
  gridImages = new AbortController();
  objectUrls.forEach((url) => URL.revokeObjectURL(url));
  objectUrls = [];
  const grid = $("results");
  grid.replaceChildren();
  grid.classList.remove("stale");
  $("stale").hidden = true;
  const verdict = $("verdict");
  verdict.hidden = !answer || answer.confident || answer.results.length === 0;
  if (answer && !verdict.hidden) {
    const value = answer.threshold && answer.threshold.value;
    verdict.textContent =
      "No confident match: these are the closest items, but they score below " +
      (value == null ? "the threshold." : `the threshold ${value.toFixed(3)}.`);
  }
  if (!answer) return;
  for (const result of answer.results) grid.append(resultTile(result));
}

function resultTile(result) {
  const label = result.label == null ? "" : result.label;
  const tile = document.createElement("li");
  tile.className = result.confident ? "result" : "result unconfident";
  Object.assign(tile.dataset, {
    rank: result.rank,
    label,
    score: result.score,
    confident: result.confident,
  });
  const button = document.createElement("button");
  button.type = "button";
  button.title = "Show larger";
  const img = document.createElement("img");
  img.alt = label || "unlabelled item";
  img.loading = "lazy";
  loadImage(img, result.image, gridImages.signal, objectUrls);
  button.append(img);
  button.addEventListener("click", () => showLarge(result));
  const caption = document.createElement("p");
  caption.innerHTML = '<span class="label"></span> <span class="score"></span>';
  caption.querySelector(".label").textContent = label || "(no label)";
  caption.querySelector(".score").textContent = result.score.toFixed(3);
  tile.append(button, caption);
  if (!result.confident) {
    const flag = document.createElement("p");
    flag.className = "flag";
    flag.textContent = "no confident match";
    tile.append(flag);
  }
  return tile;
}

// The larger view's image fetch and object URL (with a key), dropped when the dialog closes.
let viewerLoad = new AbortController();
let viewerUrls = [];

function withSize(url, size) {
  // The result's URL already carries its version (?v=…); the size is one more parameter.
  const sized = new URL(url, location.href);
  sized.searchParams.set("size", size);
  return sized.pathname + sized.search;
}

function showLarge(result) {
  const img = $("viewer-image");
  releaseViewer();
  img.alt = result.label || "unlabelled item";
  // "large" is a JPEG of at most 1024 px: an original may be a camera's 20 MB file.
  loadImage(img, withSize(result.image, "large"), viewerLoad.signal, viewerUrls);
  $("viewer-caption").textContent =
    `#${result.rank} ${result.label || "(no label)"} — score ${result.score.toFixed(3)}`;
  $("viewer").showModal();
}

function releaseViewer() {
  viewerLoad.abort();
  viewerLoad = new AbortController();
  $("viewer-image").removeAttribute("src");
  viewerUrls.forEach((url) => URL.revokeObjectURL(url));
  viewerUrls = [];
}
$("viewer").addEventListener("close", releaseViewer);

// A click on the backdrop (outside the figure) closes the dialog, as on most sites.
$("viewer").addEventListener("click", (event) => {
  if (event.target === $("viewer")) $("viewer").close();
});

// ---- photos ----------------------------------------------------------------------------
$("photo").addEventListener("change", (event) => {
  searchFile(event.target.files[0]);
  event.target.value = ""; // choosing the same file again should search again
});
// The whole page is the drop zone: a photo dropped anywhere is a query, not a navigation.
document.addEventListener("dragover", (event) => {
  event.preventDefault();
  document.body.classList.add("dropping");
});
document.addEventListener("dragleave", () => document.body.classList.remove("dropping"));
document.addEventListener("drop", (event) => {
  event.preventDefault();
  document.body.classList.remove("dropping");
  searchFile(event.dataTransfer.files[0]);
});

// ---- server information and the API key ------------------------------------------------
let shownGeneration = null;

function askForKey(message) {
  $("key-form").hidden = false;
  setStatus(message || "This server needs an API key.", true);
  $("api-key").focus();
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  sessionStorage.setItem(KEY_STORAGE, $("api-key").value.trim());
  $("api-key").value = "";
  loadInfo().then((ok) => {
    // Redo the search the missing key refused, whether it was a sketch or a photo.
    if (ok && lastQuery) submit({ ...lastQuery, mine: nextSequence() });
  });
});

function noteGallery(gallery) {
  // The server reloads its gallery while running; keep the header's numbers current.
  if (gallery && shownGeneration !== null && gallery.generation !== shownGeneration) loadInfo();
}

function modelSummary(info) {
  // The summary may be a sentence or the model card's fields; the header wants one short line.
  const { model, engine } = info;
  if (typeof model.summary === "string") return model.summary;
  const device = engine ? engine.device.replace("ExecutionProvider", "") : "";
  const runs = engine ? ` (${engine.backend}, ${device})` : "";
  const { backbone, embed_dim: dim, input_size: size, precision } = model;
  return `${backbone} · ${dim}-d · ${size} px · ${precision}${runs}`;
}

async function loadInfo() {
  let response;
  let info;
  try {
    response = await fetch("/v1/info", { headers: authHeaders() });
    info = await response.json();
  } catch (error) {
    $("info").textContent = `Server information unavailable: ${error.message}`;
    return false;
  }
  if (response.status === 401) {
    $("info").textContent = "Enter the API key to see the model and gallery.";
    askForKey(info.error);
    return false;
  }
  if (!response.ok) {
    $("info").textContent = info.error || `Server information unavailable (${response.status})`;
    return false;
  }
  $("key-form").hidden = true;
  shownGeneration = info.gallery.generation;
  const threshold = info.threshold.value == null
    ? "no threshold"
    : `threshold ${info.threshold.value.toFixed(3)} (${info.threshold.source})`;
  $("info").textContent =
    `${modelSummary(info)} · gallery: ${info.gallery.items} items, generation ` +
    `${info.gallery.generation} · ${threshold}`;
  return true;
}

redraw();
loadInfo();
