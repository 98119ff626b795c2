import type { CommandContext } from "./context.js"; export async function devCommand(_ctx: CommandContext): Promise<number> { throw new Error("not yet"); }
