/** The path of the compiled extension library (build/embed.so). */
export function getLoadablePath(): string;
/** Load the extension into a connection with loadExtension(path), such as a better-sqlite3 Database. */
export function load(db: {loadExtension(path: string): unknown}): void;
