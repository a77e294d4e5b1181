package io.shardmap.catalog;

import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.ClientPresence;
import io.shardmap.store.KeyValue;
import io.shardmap.store.MetaStore;
import io.shardmap.store.RangeResult;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Optional;
import java.util.concurrent.TimeUnit;

/**
 * Which map revision every live SDK client has acknowledged: one read of the {@code ClientPresence} records
 * every directory server publishes at {@code {prefix}/clients/{server}} (see docs/client-sdk.md,
 * "Acknowledged revisions"). The migrator deletes a moved range's rows from the old shard only once
 * {@link Acks#allApplied} holds for the cutover revision. Written by the directory servers, read by
 * the migrator.
 *
 * <p>What it can and cannot see:
 *
 * <ul>
 *   <li>a client counts while it has reported to some directory server within that server's
 *       {@code --client-report-timeout} (default 10 s). A client cut off from every directory server for
 *       longer is forgotten and not waited for (with {@code maxStaleness} set its lookups fail after that
 *       age; {@link Acks#maxStaleness} says how long that can take);
 *   <li>a server's record is rewritten at most every 250 ms, and a client reports within 100 ms of
 *       applying a revision: a client that started routing in the last second may not be listed yet;
 *   <li>a server record vanishes with its lease when the server stops or dies (its clients move to
 *       another server and report there);
 *   <li>{@code min_applied_revision} only advances at revisions that changed the maps: ask about such a
 *       revision (a cutover's), not about one that changed nothing (it may never be reported as reached);
 *   <li>"applied" means the client's map holds the revision; a call routed by the older map just before it
 *       may still be running.
 * </ul>
 */
public final class ClientAcks {
  private ClientAcks() {}

  /**
   * What the SDK clients of all directory servers have acknowledged, as of one etcd read.
   *
   * @param servers every directory server's record, by server id
   * @param clients clients counted by all servers (a client that just failed over may count twice)
   * @param minAppliedRevision every listed client has applied every map change up to this revision;
   *     0 when there are no clients
   * @param laggardClientId the client holding the minimum back, empty when there are no clients
   * @param laggardServerId the server that client reports to, empty when there are no clients
   * @param maxStaleness the longest {@code maxStaleness} any client has, i.e. how long a client cut off
   *     from every server may still route on its last map; empty when some client has no limit (it may
   *     route on an old map forever); zero when there are no clients
   */
  public record Acks(List<ClientPresence> servers, long clients, long minAppliedRevision,
                     String laggardClientId, String laggardServerId, Optional<Duration> maxStaleness) {
    public Acks {
      servers = List.copyOf(servers);
    }

    /** True when every listed client has applied {@code revision} (a revision that changed the maps). */
    public boolean allApplied(long revision) {
      return clients == 0 || minAppliedRevision >= revision;
    }

    /** Empty when {@link #allApplied}; else who holds {@code revision} back, for logs and status. */
    public Optional<String> behind(long revision) {
      if (allApplied(revision)) {
        return Optional.empty();
      }
      return Optional.of("client '" + laggardClientId + "' (via directory server '" + laggardServerId
          + "') has applied revision " + minAppliedRevision + " < " + revision + "; " + clients + " clients on "
          + servers.size() + " directory servers");
    }
  }

  /**
   * Reads every server's record (one linearizable etcd read) and combines them.
   *
   * @param paths the keys of the directory servers' {@code --etcd-prefix}
   * @throws ShardmapException UNAVAILABLE when etcd does not answer within {@code timeout}; INTERNAL for
   *     a record that is not a {@code ClientPresence}
   */
  public static Acks read(MetaStore store, CatalogPaths paths, Duration timeout) {
    RangeResult r;
    try {
      r = store.getPrefix(paths.clientsPrefix()).get(timeout.toMillis(), TimeUnit.MILLISECONDS);
    } catch (Exception e) {
      throw StoreErrors.fromStore("reading the client presence records", e);
    }
    List<ClientPresence> servers = new ArrayList<>(r.kvs().size());
    for (KeyValue kv : r.kvs()) {
      servers.add(Records.decode(kv, ClientPresence.parser()));
    }
    return combine(servers);
  }

  /** Combines server records (as {@link #read} does). */
  public static Acks combine(List<ClientPresence> servers) {
    long clients = 0;
    long min = 0;
    String laggard = "";
    String laggardServer = "";
    long maxStalenessMs = 0;
    boolean unlimited = false;
    for (ClientPresence p : servers) {
      if (p.getClientCount() <= 0) {
        continue; // no clients: its min and staleness mean nothing
      }
      if (clients == 0 || p.getMinAppliedRevision() < min) {
        min = p.getMinAppliedRevision();
        laggard = p.getLaggardClientId();
        laggardServer = p.getServerId();
      }
      clients += p.getClientCount();
      if (p.getMaxStalenessMs() == 0) {
        unlimited = true;
      } else {
        maxStalenessMs = Math.max(maxStalenessMs, p.getMaxStalenessMs());
      }
    }
    return new Acks(servers, clients, min, laggard, laggardServer,
        unlimited ? Optional.empty() : Optional.of(Duration.ofMillis(maxStalenessMs)));
  }
}
