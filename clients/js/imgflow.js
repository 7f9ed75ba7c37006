// imgflow's browser client: one ES module, no dependencies. Types: imgflow.d.ts (from the OpenAPI document).
//
//   import { Client } from "/client/imgflow.js";
//   const imgflow = new Client({ token });
//   const job = await imgflow.upload(file, { onProgress: (p) => console.log(p.phase, p.loaded, p.total) });
//
// An upload asks the API for a presigned POST, sends the file straight to S3 with XMLHttpRequest (the one
// browser API that reports upload progress byte by byte), then long-polls the job until it has ended and
// every edit asked with it has too.

const TERMINAL = new Set(["succeeded", "failed", "rejected", "expired"]);
const EDIT_DONE = new Set(["succeeded", "failed"]);
const WAIT_SECONDS = 20;

/** An answer of the API or of S3 that is not a success: `code` is the API's stable error code. */
export class ImgflowError extends Error {
  constructor(code, message, status = 0) {
    super(message);
    this.name = "ImgflowError";
    this.code = code;
    this.status = status;
  }
}

const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(timer); reject(signal.reason); }, { once: true });
  });

/** Whether a job view is final for a waiting client: the job has ended and so has every edit it shows. */
export function isSettled(view) {
  return TERMINAL.has(view.status) && (view.edits || []).every((edit) => EDIT_DONE.has(edit.status));
}

export class Client {
  /** `apiUrl`: where the HTTP API is ("" for the page's own origin); `token`: a bearer token (JWT). */
  constructor({ apiUrl = "", token = "", fetch: fetchImpl = globalThis.fetch.bind(globalThis) } = {}) {
    this.apiUrl = apiUrl.replace(/\/$/, "");
    this.token = token;
    this.fetch = fetchImpl;
  }

  async request(method, path, { body, query, timeoutMs = 30_000, signal } = {}) {
    const url = new URL(this.apiUrl + path, globalThis.location?.href);
    for (const [name, value] of Object.entries(query || {})) {
      if (value !== undefined && value !== null) url.searchParams.set(name, String(value));
    }
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(new ImgflowError("timeout", "the request timed out")), timeoutMs);
    signal?.addEventListener("abort", () => controller.abort(signal.reason), { once: true });
    const headers = this.token ? { Authorization: `Bearer ${this.token}` } : {};
    if (body !== undefined) headers["content-type"] = "application/json";
    let response;
    try {
      response = await this.fetch(url, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        signal: controller.signal,
      });
    } catch (error) {
      if (error instanceof ImgflowError) throw error;
      throw new ImgflowError("network_error", error?.message || "the API could not be reached");
    } finally {
      clearTimeout(timer);
    }
    if (response.status === 204) return null;
    const answer = await response.json().catch(() => null);
    if (!response.ok) {
      const error = answer?.error;
      throw new ImgflowError(error?.code || `http_${response.status}`, error?.message || answer?.message || response.statusText, response.status);
    }
    return answer;
  }

  /** Upload a File or Blob; with `wait` (the default) resolve with the job once it has settled. */
  async upload(file, { filename, edits, variants, metadata, notifyUrl, onProgress, wait = true, signal } = {}) {
    const name = filename || file.name || "upload";
    // The API only labels the object with the declared type; the bytes decide what the image is.
    const contentType = /^image\/[a-z0-9.+-]+$/.test(file.type) ? file.type : "application/octet-stream";
    const created = await this.request("POST", "/uploads", {
      body: {
        filename: name,
        content_type: contentType,
        size: file.size,
        ...(edits?.length ? { edits } : {}),
        ...(variants ? { variants } : {}),
        ...(metadata ? { metadata } : {}),
        ...(notifyUrl ? { notify_url: notifyUrl } : {}),
      },
      signal,
    });
    onProgress?.({ phase: "upload", loaded: 0, total: file.size, jobId: created.job_id });
    await postForm(created.upload, file, (loaded, total) => onProgress?.({ phase: "upload", loaded, total, jobId: created.job_id }), signal);
    if (!wait) return created;
    return this.waitFor(created.job_id, { onProgress, signal });
  }

  /** The job view; with `wait` (seconds, at most 20) the answer comes when its version passes `since`. */
  job(jobId, { wait, since, signal } = {}) {
    return this.request("GET", `/jobs/${encodeURIComponent(jobId)}`, {
      query: { wait, since },
      timeoutMs: ((wait || 0) + 30) * 1000,
      signal,
    });
  }

  /** Long-poll a job until it has settled (ended, with every edit it shows); each change goes to onProgress. */
  async waitFor(jobId, { onProgress, signal, timeoutMs = 20 * 60_000 } = {}) {
    const deadline = Date.now() + timeoutMs;
    let view = await this.job(jobId, { signal });
    onProgress?.({ phase: "processing", job: view });
    let idleMs = 0;
    while (!isSettled(view)) {
      if (Date.now() > deadline) throw new ImgflowError("timeout", `job ${jobId} has not settled in time`);
      const next = await this.job(jobId, { wait: WAIT_SECONDS, since: view.version, signal });
      if (next.version > view.version) {
        view = next;
        idleMs = 0;
        onProgress?.({ phase: "processing", job: view });
      } else if (TERMINAL.has(next.status)) {
        // An ended job answers at once even with since=: back off while its edits run.
        idleMs = Math.min(idleMs ? idleMs * 2 : 250, 4000);
        await sleep(idleMs, signal);
      }
    }
    return view;
  }

  /** One page of the caller's jobs, newest first (`next_cursor` continues it). */
  jobs({ status, limit, cursor, signal } = {}) {
    return this.request("GET", "/jobs", { query: { status, limit, cursor }, signal });
  }

  delete(jobId, { signal } = {}) {
    return this.request("DELETE", `/jobs/${encodeURIComponent(jobId)}`, { signal });
  }

  /** Add an edit ({prompt}, {translate_to} or {operations}, optionally parent_edit_id); with `wait`, the job once it has settled. */
  async edit(jobId, edit, { wait = false, onProgress, signal } = {}) {
    const accepted = await this.request("POST", `/jobs/${encodeURIComponent(jobId)}/edits`, { body: edit, signal });
    return wait ? this.waitFor(jobId, { onProgress, signal }) : accepted;
  }

  feedback(jobId, editId, rating, text, { signal } = {}) {
    const body = text ? { rating, text } : { rating };
    return this.request("POST", `/jobs/${encodeURIComponent(jobId)}/edits/${encodeURIComponent(editId)}/feedback`, { body, signal });
  }

  stats({ hours, signal } = {}) {
    return this.request("GET", "/stats", { query: { hours }, signal });
  }
}

/** Send a file with a presigned POST. S3 answers 204, or XML whose <Code> says why it refused. */
export function postForm(upload, file, onBytes, signal) {
  return new Promise((resolve, reject) => {
    const form = new FormData();
    for (const [name, value] of Object.entries(upload.fields)) form.append(name, value);
    form.append("file", file); // S3 ignores every field after the file: it must come last.
    const xhr = new XMLHttpRequest();
    xhr.open("POST", upload.url);
    xhr.upload.addEventListener("progress", (e) => { if (e.lengthComputable) onBytes?.(e.loaded, e.total); });
    xhr.addEventListener("load", () => {
      if (xhr.status >= 200 && xhr.status < 300) {
        onBytes?.(file.size, file.size);
        return resolve();
      }
      const xml = new DOMParser().parseFromString(xhr.responseText || "", "application/xml");
      const code = xml.querySelector("Error > Code")?.textContent || `http_${xhr.status}`;
      const message = xml.querySelector("Error > Message")?.textContent || xhr.statusText || "S3 refused the upload";
      reject(new ImgflowError(code, message, xhr.status));
    });
    xhr.addEventListener("error", () => reject(new ImgflowError("network_error", "the upload could not reach S3")));
    xhr.addEventListener("timeout", () => reject(new ImgflowError("timeout", "the upload timed out")));
    xhr.addEventListener("abort", () => reject(new ImgflowError("aborted", "the upload was cancelled")));
    signal?.addEventListener("abort", () => xhr.abort(), { once: true });
    xhr.timeout = 10 * 60_000;
    xhr.send(form);
  });
}

/** Upload one file and wait for its job: `upload(file, { token, onProgress })`. */
export function upload(file, { token, apiUrl = "", ...options } = {}) {
  return new Client({ apiUrl, token }).upload(file, options);
}
