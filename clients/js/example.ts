// Compiled by `make js-check` against imgflow.d.ts: how a web app uses the client, type-checked.
import { Client, ImgflowError, upload, type JobView } from "./imgflow";

export async function uploadAndShow(file: File, token: string): Promise<string[]> {
  const client = new Client({ token });
  let view: JobView;
  try {
    view = await client.upload(file, {
      edits: [{ operations: [{ op: "grayscale" }] }],
      onProgress: (progress) => {
        if (progress.phase === "upload") console.log(`${progress.loaded} of ${progress.total} bytes`);
        else console.log(progress.job.status);
      },
    });
  } catch (error) {
    if (error instanceof ImgflowError && error.code === "quota_exceeded") return [];
    throw error;
  }
  const created = await client.upload(file, { wait: false });
  console.log(created.job_id, created.upload.url);
  const { jobs } = await client.jobs({ status: "succeeded", limit: 10 });
  console.log(jobs.length, (await client.stats({ hours: 24 })).uploads);
  await client.edit(view.job_id, { prompt: "make it look like a postcard" });
  await upload(file, { token });
  return (view.variants ?? []).map((variant) => variant.url);
}
