// API docs that work offline: reads the server's own /openapi.json and lays out every path,
// method, parameter, request body and response, instead of loading Swagger UI from a CDN.
"use strict";

const METHODS = ["get", "post", "put", "patch", "delete", "head", "options"];
let spec = {};

// Builds an element; text goes through textContent so nothing from the spec becomes markup.
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs)) node.setAttribute(name, value);
  for (const child of children) {
    if (child != null) node.append(child instanceof Node ? child : String(child));
  }
  return node;
}

function resolve(item) {
  // Only local references (#/components/...) occur in a FastAPI document.
  if (!item || !item.$ref) return item;
  return item.$ref.replace(/^#\//, "").split("/").reduce((node, key) => node && node[key], spec);
}

function refName(schema) {
  return schema && schema.$ref ? schema.$ref.split("/").pop() : null;
}

// A schema as a short, readable type outline, e.g. `{ rank: integer, label: string | null }`.
// Named schemas are written by name (listed in full at the end), which also stops cycles.
function typeText(schema, indent = "") {
  if (!schema) return "any";
  if (schema.$ref) return refName(schema);
  const alternatives = schema.anyOf || schema.oneOf;
  if (alternatives) return alternatives.map((s) => typeText(s, indent)).join(" | ");
  if (schema.allOf) return schema.allOf.map((s) => typeText(s, indent)).join(" & ");
  if (schema.enum) return schema.enum.map((v) => JSON.stringify(v)).join(" | ");
  if (schema.const !== undefined) return JSON.stringify(schema.const);
  if (schema.type === "array") return `${typeText(schema.items, indent)}[]`;
  if (schema.type === "object" || schema.properties) return objectText(schema, indent);
  let text = schema.type || "any";
  if (schema.format) text += ` (${schema.format})`;
  return text;
}

function objectText(schema, indent) {
  const properties = Object.entries(schema.properties || {});
  const extra = schema.additionalProperties;
  if (properties.length === 0) {
    return extra && extra !== true ? `{ [key]: ${typeText(extra, indent)} }` : "object";
  }
  const required = new Set(schema.required || []);
  const inner = `${indent}  `;
  const lines = properties.map(([name, property]) => {
    const optional = required.has(name) ? "" : "?";
    const note = property.description ? `  // ${property.description}` : "";
    return `${inner}${name}${optional}: ${typeText(property, inner)}${note}`;
  });
  return `{\n${lines.join(",\n")}\n${indent}}`;
}

function constraints(schema) {
  const parts = [];
  const words = { minimum: "≥", maximum: "≤", exclusiveMinimum: ">", exclusiveMaximum: "<" };
  for (const [key, word] of Object.entries(words)) {
    // A 64-bit bound (a path id's) says nothing to a reader and prints wrongly as a double.
    const value = schema[key];
    if (typeof value === "number" && Math.abs(value) < Number.MAX_SAFE_INTEGER) {
      parts.push(`${word} ${value}`);
    }
  }
  if (schema.default !== undefined) parts.push(`default ${JSON.stringify(schema.default)}`);
  return parts.join(", ");
}

function parametersTable(parameters) {
  const rows = parameters.map(resolve).map((p) => {
    const schema = p.schema || {};
    return el(
      "tr",
      {},
      el("td", {}, el("code", {}, p.name), p.required ? " (required)" : ""),
      el("td", {}, p.in),
      el("td", {}, el("code", {}, typeText(schema))),
      el("td", {}, [p.description || schema.description, constraints(schema)]
        .filter(Boolean).map((text) => text.replace(/\.$/, "")).join("; ")),
    );
  });
  const head = el("tr", {}, ...["Name", "In", "Type", "Notes"].map((h) => el("th", {}, h)));
  return el("table", {}, el("thead", {}, head), el("tbody", {}, ...rows));
}

function contentList(content) {
  // Media types with the same body shape share one block (all the raw image types do).
  const shapes = new Map();
  for (const [type, media] of Object.entries(content || {})) {
    const schema = media.schema && Object.keys(media.schema).length ? media.schema : null;
    const shape = schema ? typeText(schema) : "";
    shapes.set(shape, [...(shapes.get(shape) || []), type]);
  }
  const list = el("div");
  for (const [shape, types] of shapes) {
    list.append(el("p", {}, ...types.flatMap((t, i) => [i ? ", " : "", el("code", {}, t)])));
    if (shape) list.append(el("pre", {}, shape));
  }
  return list;
}

function operationBlock(path, method, op) {
  const id = `${method}-${path}`.replace(/[^A-Za-z0-9]+/g, "-");
  const block = el(
    "section",
    { class: "operation", id },
    el("h3", {}, el("span", { class: `method ${method}` }, method), path),
  );
  if (op.summary) block.append(el("p", {}, el("strong", {}, op.summary)));
  if (op.description) block.append(el("p", { style: "white-space: pre-line" }, op.description));
  if (op.parameters && op.parameters.length) {
    block.append(el("h4", {}, "Parameters"), parametersTable(op.parameters));
  }
  const body = resolve(op.requestBody);
  if (body) {
    const title = body.required ? "Request body (required)" : "Request body";
    block.append(el("h4", {}, title));
    if (body.description) block.append(el("p", {}, body.description));
    block.append(contentList(body.content));
  }
  block.append(el("h4", {}, "Responses"));
  for (const [status, raw] of Object.entries(op.responses || {})) {
    const response = resolve(raw);
    block.append(el("p", {}, el("strong", {}, status), " ", response.description || ""));
    block.append(contentList(response.content));
  }
  return { block, id };
}

function render() {
  const info = spec.info || {};
  document.title = `${info.title || "API"} ${info.version || ""}`.trim();
  document.getElementById("title").textContent = info.title || "API";
  document.getElementById("version").textContent =
    `version ${info.version || "?"} · OpenAPI ${spec.openapi || "?"}`;
  if (info.description) {
    document.getElementById("description").append(
      el("p", { style: "white-space: pre-line" }, info.description),
    );
  }
  const operations = document.getElementById("operations");
  const toc = el("ul");
  operations.replaceChildren();
  for (const [path, item] of Object.entries(spec.paths || {})) {
    for (const method of METHODS.filter((m) => item[m])) {
      const { block, id } = operationBlock(path, method, item[method]);
      operations.append(block);
      toc.append(el("li", {}, el("a", { href: `#${id}` }, `${method.toUpperCase()} ${path}`)));
    }
  }
  document.getElementById("toc").append(toc);
  renderSchemas((spec.components || {}).schemas || {});
}

function renderSchemas(schemas) {
  const names = Object.keys(schemas).sort();
  if (names.length === 0) return;
  const section = document.getElementById("schemas");
  section.append(el("h2", {}, "Schemas"));
  for (const name of names) {
    const schema = schemas[name];
    section.append(el("h4", { id: `schema-${name}` }, name));
    if (schema.description) section.append(el("p", {}, schema.description));
    section.append(el("pre", {}, typeText({ ...schema, title: undefined })));
  }
}

fetch("/openapi.json")
  .then((response) => {
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    return response.json();
  })
  .then((document_) => {
    spec = document_;
    render();
  })
  .catch((error) => {
    document.getElementById("operations").textContent =
      `Could not load /openapi.json: ${error.message}`;
  });
