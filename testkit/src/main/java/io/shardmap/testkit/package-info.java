/**
 * Test kit: the real infrastructure Shardmap's tests run against, plus the store contract suite.
 *
 * <h2>Fixtures</h2>
 *
 * <ul>
 *   <li>{@link io.shardmap.testkit.EtcdCluster}: a multi-member etcd cluster whose members can be
 *       killed and restarted, for tests of the etcd store and of behaviour under quorum loss; a
 *       local cluster can also be backed up and restored from the backup with etcdctl, for tests
 *       of etcd going back in time.
 *   <li>{@link io.shardmap.testkit.PostgresFixture}: one PostgreSQL server and database per shard,
 *       with servers that can be stopped and started, for tests that move data between shards; a
 *       private one can be started with other server settings (e.g. {@code
 *       max_prepared_transactions = 0}).
 *   <li>{@link io.shardmap.testkit.PatroniCluster}: one shard as a Patroni-managed PostgreSQL 15
 *       cluster (a primary and synchronous standbys) on a given etcd, whose primary can be killed or
 *       switched over, for tests of failover (docs/patroni.md). Local binaries only (Debian's
 *       {@code patroni} and {@code python3-etcd}); where they are missing it says so and tests skip.
 *   <li>{@link io.shardmap.testkit.FreePorts}: loopback ports for the servers above, chosen so a
 *       stopped server's port is still free when it restarts.
 *   <li>{@link io.shardmap.testkit.Await}: the one bounded poll for a condition another thread makes true.
 * </ul>
 *
 * <p>Both fixtures find their servers the same way, first match wins: servers named by
 * environment variables ({@code SHARDMAP_TEST_ETCD_ENDPOINTS}, {@code SHARDMAP_TEST_PG_URLS}),
 * which tests may use but not stop; else locally installed binaries (etcd on the PATH or in
 * {@code /usr/bin}, PostgreSQL in {@code /usr/lib/postgresql/N/bin}), run as child processes on
 * 127.0.0.1 with data in temporary directories; else Docker containers through Testcontainers.
 * Fault tests ask {@code canControlMembers()} / {@code canControlInstances()} and skip when the
 * answer is no; with the fixture's own servers the answer is always yes, and {@code .ci/run} fails on any
 * skipped test. Each fixture has a JVM-wide shared instance for tests that only read and write
 * (closed by a shutdown hook; use unique keys and table names) and a way to start a private one
 * for tests that break things.
 *
 * <p>Every wait is bounded, and every failure message says where the server logs are.
 *
 * <p>Directory servers on top of these fixtures are in {@code shardmap-testkit-fleet}
 * ({@code io.shardmap.testkit.fleet.ShardmapFleet}): this module cannot depend on the directory server,
 * whose own tests use this one.
 *
 * <h2>Store contract suite</h2>
 *
 * <p>{@code MetaStoreContract} is the behavioural specification of
 * {@link io.shardmap.store.MetaStore} as tests: the same suite runs against the in-memory fake and
 * against etcd started by {@link io.shardmap.testkit.EtcdCluster}, so domain code tested on the
 * fast fake can rely on the same behaviour in production. It lives in main (not test) sources,
 * which is why this module depends on JUnit at compile scope: other modules run it from their own
 * tests.
 */
package io.shardmap.testkit;
