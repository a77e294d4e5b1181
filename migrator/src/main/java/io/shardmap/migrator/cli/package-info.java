/**
 * {@code migrator}, the operator's command line for moving units of a keyspace (key ranges, hash buckets,
 * ring arcs, directory entries) between shards: {@code move}, {@code reshard}, {@code resume}, {@code
 * cancel}, {@code status}, {@code list}, {@code worker} and the group {@code reference} (reference tables:
 * {@code add}, {@code sync}, {@code list}, {@code remove}, docs/reference-tables.md; {@code verify} and
 * {@code repair} compare and repair the copies, docs/reference-verify.md: their reports are JSON objects of
 * their own with {@code --json}, not protobuf, their progress lines
 * {@code {"step":..,"done":..,"total":..,"rows":..}}, and they exit 8 when the copies differ), each a
 * picocli subcommand over the public {@link io.shardmap.migrator.Migrator} API (docs/migrator.md).
 *
 * <p>Guarantees scripts can rely on: with {@code --json}, stdout carries exactly the protobuf JSON of the
 * answer (one {@code Migration} object; a JSON array of them for {@code list}) and stderr carries progress
 * as one compact {@code Migration} object per line, one for every version the driving worker persists
 * (about every second while a long step works, cleanup included); every output names the unit that moves
 * ({@code bucket 3 of 8}, never "range" for a unit that is not one); errors go to stderr as
 * {@code error: <CODE>: <message>} with the message naming the field; the exit code classifies the
 * outcome by the table every Shardmap CLI shares ({@link io.shardmap.support.cli.ExitCode}). A database password is never a
 * flag value: it comes from {@code PGPASSWORD} or a file.
 */
package io.shardmap.migrator.cli;
