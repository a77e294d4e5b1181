/**
 * {@code migrator}, the operator's command line for moving key ranges between shards: {@code move},
 * {@code resume}, {@code cancel}, {@code status}, {@code list} and {@code worker}, each a picocli subcommand
 * over the public {@link io.shardmap.migrator.Migrator} API (docs/migrator.md).
 *
 * <p>Guarantees scripts can rely on: with {@code --json}, stdout carries exactly the protobuf JSON of the
 * answer (one {@code Migration} object; a JSON array of them for {@code list}) and stderr carries progress
 * as one compact {@code Migration} object per line; errors go to stderr as
 * {@code error: <CODE>: <message>} with the message naming the field; the exit code classifies the
 * outcome (see {@link io.shardmap.migrator.cli.MigratorCli#exitCode}). A database password is never a
 * flag value: it comes from {@code PGPASSWORD} or a file.
 */
package io.shardmap.migrator.cli;
