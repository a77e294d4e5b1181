/**
 * A small service written on the client SDK, kept compiling and tested as documentation: {@link
 * io.shardmap.examples.UsersExample} (the {@code shardmap-example} command of the README's quick start)
 * follows the directory's map and writes users through {@link io.shardmap.examples.UserStore}, one
 * {@code ShardmapData} call per user, so it keeps working while ranges are split or moved; {@code
 * --verify} checks afterwards that every row is on the shard the map names. Its {@code transfer} command
 * moves money between two users' accounts through {@link io.shardmap.examples.AccountStore}, one {@code
 * ShardmapData.acrossShards} transaction over both users' shards with a ledger row on each side; {@code
 * accounts} shows the balances and ledger rows.
 */
package io.shardmap.examples;
