import pg from 'pg';

/** One short-lived connection for seeding and inspecting sandbox databases (never for runbook work: see activities/pg-connect.ts). */
export async function withClient<T>(url: string, fn: (client: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: url });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}
