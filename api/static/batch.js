// A Kaggle CSV: uploaded, followed through its events (GET v1/batches/<id>/events, an
// EventSource that resumes by itself after a dropped connection), then submission.csv offered.

import { request, say, showVersion, withKey } from "./http.js";

const $ = (id) => document.getElementById(id);

export async function uploadCsv(file) {
  const link = $("download");
  link.hidden = true;
  if (link.href) URL.revokeObjectURL(link.href);
  $("csv-name").textContent = file.name;
  $("progress").value = 0;
  $("batch-status").textContent = "Uploading…";
  try {
    const body = new FormData();
    body.append("file", file, file.name);
    const batch = await request("v1/batches", { method: "POST", body });
    $("batch-status").textContent = `0 of ${batch.rows} rows`;
    const end = await follow(batch);
    const csv = await request(batch.submission_url);
    link.href = URL.createObjectURL(new Blob([csv], { type: "text/csv" }));
    link.hidden = false;
    const accuracy =
      end.accuracy === undefined || end.accuracy === null
        ? ""
        : `, accuracy ${(end.accuracy * 100).toFixed(2)}%`;
    $("batch-status").textContent =
      `Done: ${end.rows} rows, ${end.uncertain_rows} uncertain${accuracy}.`;
    showVersion(end.model_versions.at(-1));
  } catch (error) {
    $("batch-status").textContent = "Batch failed.";
    say(error.message, true);
  }
}

// Resolves with the `finished` event's data; rejects on `failed` or a refused connection.
function follow(batch) {
  return new Promise((resolve, reject) => {
    const source = new EventSource(withKey(`${batch.status_url}/events`));
    const data = (event) => JSON.parse(event.data);
    source.addEventListener("progress", (event) => {
      const { rows_done: done, rows } = data(event);
      $("progress").value = rows ? done / rows : 0;
      $("batch-status").textContent = `${done} of ${rows} rows`;
    });
    source.addEventListener("finished", (event) => {
      source.close();
      $("progress").value = 1;
      resolve(data(event));
    });
    source.addEventListener("failed", (event) => {
      source.close();
      reject(new Error(data(event).error || "the batch failed"));
    });
    source.addEventListener("error", () => {
      // A dropped connection is retried by the EventSource itself; a refused one (401, 404,
      // 410) closes it, and the batch's status says why.
      if (source.readyState !== EventSource.CLOSED) return;
      request(batch.status_url).then(
        () => reject(new Error("lost the batch's events")),
        (error) => reject(error),
      );
    });
  });
}
