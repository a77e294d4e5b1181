/**
 * What every Shardmap command line shares, so that {@code shardmapctl}, {@code migrator}, {@code
 * shardmap-server}, the example and the bench commands behave alike: one table of exit codes ({@link
 * io.shardmap.support.cli.ExitCode}, each number with one meaning in every CLI), one duration grammar
 * ({@link io.shardmap.support.cli.Durations}, used as the picocli converter of every duration option),
 * one table printer ({@link io.shardmap.support.cli.Table}) and one shape of error line ({@link
 * io.shardmap.support.cli.Errors}: {@code error: <CODE>: <message>} on stderr).
 *
 * <p>Depends on picocli only: gRPC status codes are taken by name, so a CLI that does not speak gRPC does
 * not pull it in.
 */
package io.shardmap.support.cli;
