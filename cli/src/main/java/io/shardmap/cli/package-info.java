/**
 * {@code shardmapctl}, the operator's command line for the Shardmap directory: one picocli subcommand per
 * admin or read RPC of {@code shardmap.v1}, talking plaintext gRPC to one directory server. {@code query}
 * and {@code count} ({@link io.shardmap.cli.QueryCommands}) are the exception: they run a cross-shard SELECT
 * through the client SDK, started on the same server, and so also connect to the shards' PostgreSQL.
 *
 * <p>Guarantees scripts can rely on: {@code --output json} prints exactly the protobuf JSON of the RPC's
 * response (one document per command; one compact document per line for {@code watch}; for {@code query}
 * and {@code count}, which answer from the shards, one {@code {"row":...}} line per row and a last
 * {@code {"summary":...}} line), errors go to
 * stderr as {@code error: <STATUS>: <message>}, and the exit code classifies the failure by the one table
 * every Shardmap CLI shares ({@link io.shardmap.support.cli.ExitCode}). Keys and range specs are parsed with the keyspace's key type by
 * {@link io.shardmap.core.KeyRange}, the same parser the rest of Shardmap uses.
 */
package io.shardmap.cli;
