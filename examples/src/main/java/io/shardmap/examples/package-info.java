/**
 * A small service written on the client SDK, kept compiling and tested as documentation: {@link
 * io.shardmap.examples.UsersExample} (the {@code shardmap-example} command of the README's quick start)
 * follows the directory's map and writes users through {@link io.shardmap.examples.UserStore}, one
 * {@code ShardmapData} call per user, so it keeps working while ranges are split or moved; {@code
 * --verify} checks afterwards that every row is on the shard the map names.
 */
package io.shardmap.examples;
