package io.shardmap.server.internal;

import io.grpc.stub.ServerCallStreamObserver;
import io.grpc.stub.StreamObserver;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.Keys;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Names;
import io.shardmap.core.Route;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.*;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.HashSet;
import java.util.List;
import java.util.Map;
import java.util.Set;

/**
 * The read side. Every answer comes from one immutable snapshot read from a volatile field: no lock, no
 * etcd round trip. Runs on the transport threads (direct executor): nothing here blocks.
 */
public final class ReadService extends ShardMapServiceGrpc.ShardMapServiceImplBase {
  public static final int MAX_BATCH_KEYS = 100_000;
  private static final int DEFAULT_PAGE = 10_000;
  private static final int MAX_PAGE = 100_000;

  private final DirectoryState state;
  private final ServerMetrics metrics;
  private final WatchStreams watches;
  private volatile ClientRegistry clients;
  private final String etcdPrefix;
  private final ReferenceTables references;

  /**
   * {@code etcdPrefix}: the cluster's, from which the transaction namespace is made; {@code references}
   * answers ListReferenceTables (an etcd read that completes off the transport thread).
   */
  public ReadService(DirectoryState state, ServerMetrics metrics, WatchStreams watches, String etcdPrefix,
      ReferenceTables references) {
    this.state = state;
    this.metrics = metrics;
    this.watches = watches;
    this.etcdPrefix = etcdPrefix;
    this.references = references;
  }

  @Override
  public void listReferenceTables(ListReferenceTablesRequest req, StreamObserver<ListReferenceTablesResponse> out) {
    try {
      references.list(req.getKeyspace()).whenComplete((r, e) -> {
        if (e != null) {
          out.onError(Errors.toStatus(e));
        } else {
          out.onNext(r);
          out.onCompleted();
        }
      });
    } catch (RuntimeException e) {
      out.onError(Errors.toStatus(e));
    }
  }

  @Override
  public void getClusterInfo(GetClusterInfoRequest req, StreamObserver<GetClusterInfoResponse> out) {
    try {
      String namespace;
      try {
        namespace = io.shardmap.core.TxnId.namespaceOf(etcdPrefix);
      } catch (ShardmapException e) {
        // A prefix that makes no namespace is the server's configuration, not the request's fault.
        throw new ShardmapException(ErrorCode.FAILED_PRECONDITION, "this server's etcd prefix cannot name "
            + "cross-shard transactions: " + e.getMessage());
      }
      out.onNext(GetClusterInfoResponse.newBuilder().setTxnNamespace(namespace).build());
      out.onCompleted();
    } catch (RuntimeException e) {
      out.onError(Errors.toStatus(e));
    }
  }

  @Override
  public void lookup(LookupRequest req, StreamObserver<LookupResponse> out) {
    try {
      DirectorySnapshot snap = state.snapshot();
      KeyspaceMap k = keyspace(snap, req.getKeyspace());
      Route r;
      if (req.getKey().getValueCase() == Key.ValueCase.INT_KEY && k.keyType() == KeyType.KEY_TYPE_INT64) {
        r = k.route(req.getKey().getIntKey());
      } else {
        r = k.route(Keys.canonical(k.keyType(), req.getKey(), "key"));
      }
      LookupResponse.Builder b = LookupResponse.newBuilder().setFreshness(state.freshness(snap));
      io.shardmap.proto.v1.Route.Builder route = b.getRouteBuilder().setShard(r.shard()).setEpoch(r.epoch());
      if (r.range() != null) {
        route.setRange(r.range().toProto(k.keyType()));
      }
      Shard shard = snap.shards().get(r.shard());
      if (shard != null) {
        b.setShard(shard);
      }
      metrics.lookup();
      out.onNext(b.build());
      out.onCompleted();
    } catch (RuntimeException e) {
      out.onError(Errors.toStatus(e));
    }
  }

  @Override
  public void batchLookup(BatchLookupRequest req, StreamObserver<BatchLookupResponse> out) {
    try {
      DirectorySnapshot snap = state.snapshot();
      KeyspaceMap k = keyspace(snap, req.getKeyspace());
      int lists = (req.getKeysCount() > 0 ? 1 : 0) + (req.getIntKeysCount() > 0 ? 1 : 0)
          + (req.getBytesKeysCount() > 0 ? 1 : 0);
      if (lists != 1) {
        throw ShardmapException.invalid("keys", "set exactly one of keys, int_keys, bytes_keys (non-empty)");
      }
      int n = req.getKeysCount() + req.getIntKeysCount() + req.getBytesKeysCount();
      if (n > MAX_BATCH_KEYS) {
        throw ShardmapException.invalid("keys", "at most " + MAX_BATCH_KEYS + " keys per batch, got " + n);
      }
      BatchLookupResponse.Builder b = BatchLookupResponse.newBuilder();
      Map<String, Integer> index = new HashMap<>();
      int[] shardIdx = new int[n];
      long[] epochs = new long[n];
      Route last = null;
      int lastIdx = -1;
      // For a directory, which keys the fallback answered: the fallback is one shared Route instance, an
      // entry never is, so identity tells them apart without a second lookup.
      boolean directory = k.strategy() == Strategy.STRATEGY_DIRECTORY;
      Route fallback = directory ? k.directory().fallback() : null;
      boolean[] fromFallback = directory ? new boolean[n] : null;
      for (int i = 0; i < n; i++) {
        Route r;
        if (req.getIntKeysCount() > 0) {
          if (k.keyType() != KeyType.KEY_TYPE_INT64) {
            throw ShardmapException.invalid("int_keys", "keyspace '" + k.name()
                + "' has KEY_TYPE_BYTES keys; use bytes_keys or keys");
          }
          r = k.routeOrNull(req.getIntKeys(i));
        } else if (req.getBytesKeysCount() > 0) {
          byte[] key = req.getBytesKeys(i).toByteArray();
          if (k.keyType() == KeyType.KEY_TYPE_INT64) {
            throw ShardmapException.invalid("bytes_keys", "keyspace '" + k.name()
                + "' has KEY_TYPE_INT64 keys; use int_keys");
          }
          r = k.routeOrNull(Keys.checkBytesKey(key, "bytes_keys[" + i + "]"));
        } else {
          r = k.routeOrNull(Keys.canonical(k.keyType(), req.getKeys(i), "keys[" + i + "]"));
        }
        if (directory) {
          fromFallback[i] = r == null || r == fallback;
        }
        if (r == null) {
          shardIdx[i] = -1;
          continue;
        }
        // Consecutive keys usually share a route object; skip the map lookup then.
        if (r != last) {
          Integer idx = index.get(r.shard());
          if (idx == null) {
            idx = index.size();
            index.put(r.shard(), idx);
            b.addShards(r.shard());
          }
          last = r;
          lastIdx = idx;
        }
        shardIdx[i] = lastIdx;
        epochs[i] = r.epoch();
      }
      for (int i = 0; i < n; i++) {
        b.addShardIndexes(shardIdx[i]);
      }
      for (int i = 0; i < n; i++) {
        b.addEpochs(epochs[i]);
      }
      if (directory) {
        for (int i = 0; i < n; i++) {
          b.addFromFallback(fromFallback[i]);
        }
      }
      b.setFreshness(state.freshness(snap));
      metrics.batchLookup(n);
      out.onNext(b.build());
      out.onCompleted();
    } catch (RuntimeException e) {
      out.onError(Errors.toStatus(e));
    }
  }

  @Override
  public void getMap(GetMapRequest req, StreamObserver<GetMapResponse> out) {
    try {
      int pageSize = req.getPageSize() == 0 ? DEFAULT_PAGE : req.getPageSize();
      if (pageSize < 1 || pageSize > MAX_PAGE) {
        throw ShardmapException.invalid("page_size", "must be 1-" + MAX_PAGE + ", got " + req.getPageSize());
      }
      DirectorySnapshot snap;
      long offset = 0;
      if (req.getPageToken().isEmpty()) {
        snap = state.snapshot();
      } else {
        long[] token = parseToken(req.getPageToken());
        snap = state.pinned(token[0]);
        offset = token[1];
      }
      KeyspaceMap k = keyspace(snap, req.getKeyspace());
      KeyType type = k.keyType();
      GetMapResponse.Builder b = GetMapResponse.newBuilder().setSpec(k.spec()).setRevision(snap.revision())
          .addAllShards(snap.shards().values()).setFreshness(state.freshness(snap));
      // The layout, and a page of what the strategy pages (ranges, directory entries).
      long total = k.kind().page(k, b, offset, pageSize, req.getSkipEntries());
      if (offset + pageSize < total) {
        state.pin(snap);
        b.setNextPageToken(snap.revision() + ":" + (offset + pageSize));
      }
      out.onNext(b.build());
      out.onCompleted();
    } catch (RuntimeException e) {
      out.onError(Errors.toStatus(e));
    }
  }

  private static long[] parseToken(String token) {
    int c = token.indexOf(':');
    try {
      long rev = Long.parseLong(token.substring(0, c));
      long off = Long.parseLong(token.substring(c + 1));
      if (rev > 0 && off > 0) {
        return new long[] {rev, off};
      }
    } catch (RuntimeException e) {
      // fall through to the error below
    }
    throw ShardmapException.invalid("page_token", "not a token from a previous GetMap response");
  }

  @Override
  public void listKeyspaces(ListKeyspacesRequest req, StreamObserver<ListKeyspacesResponse> out) {
    try {
      DirectorySnapshot snap = state.snapshot();
      ListKeyspacesResponse.Builder b = ListKeyspacesResponse.newBuilder().setRevision(snap.revision());
      snap.keyspaces().values().stream().map(KeyspaceMap::spec)
          .sorted(java.util.Comparator.comparing(KeyspaceSpec::getName)).forEach(b::addKeyspaces);
      out.onNext(b.build());
      out.onCompleted();
    } catch (RuntimeException e) {
      out.onError(Errors.toStatus(e));
    }
  }

  @Override
  public void listShards(ListShardsRequest req, StreamObserver<ListShardsResponse> out) {
    try {
      DirectorySnapshot snap = state.snapshot();
      ListShardsResponse.Builder b = ListShardsResponse.newBuilder().setRevision(snap.revision());
      snap.shards().values().stream().sorted(java.util.Comparator.comparing(Shard::getName))
          .forEach(b::addShards);
      out.onNext(b.build());
      out.onCompleted();
    } catch (RuntimeException e) {
      out.onError(Errors.toStatus(e));
    }
  }

  @Override
  public void watch(WatchRequest req, StreamObserver<WatchResponse> out) {
    try {
      Set<String> filter = new HashSet<>();
      for (int i = 0; i < req.getKeyspacesCount(); i++) {
        filter.add(Names.keyspace("keyspaces[" + i + "]", req.getKeyspaces(i)));
      }
      if (req.getAfterRevision() < 0) {
        throw ShardmapException.invalid("after_revision", "must be >= 0");
      }
      watches.open((ServerCallStreamObserver<WatchResponse>) out, filter, req.getAfterRevision());
    } catch (RuntimeException e) {
      out.onError(Errors.toStatus(e));
    }
  }

  private volatile LoadReports loads;

  /** Set with {@link #clients}: checks and records the load part of ReportApplied. */
  public void loads(LoadReports reports) {
    this.loads = reports;
  }

  /** Set once the server knows its id (after binding its port), before it serves. */
  public void clients(ClientRegistry registry) {
    this.clients = registry;
  }

  @Override
  public void reportApplied(ReportAppliedRequest req, StreamObserver<ReportAppliedResponse> out) {
    try {
      Names.processId("client_id", req.getClientId());
      if (req.getAppliedRevision() < 0) {
        throw ShardmapException.invalid("applied_revision", "must be >= 0, got " + req.getAppliedRevision());
      }
      if (req.getMaxStalenessMs() < 0) {
        throw ShardmapException.invalid("max_staleness_ms", "must be >= 0 (0 = no limit), got "
            + req.getMaxStalenessMs());
      }
      ClientRegistry registry = clients;
      LoadReports load = loads;
      if (registry == null || load == null) {
        throw new ShardmapException(ErrorCode.UNAVAILABLE, "the directory server is starting");
      }
      // The whole report is checked before any of it is recorded: a refused report changes nothing.
      List<LoadReports.Checked> checked = req.getLoadCount() == 0 ? List.of() : load.check(req, state.snapshot());
      registry.report(req.getClientId(), req.getAppliedRevision(), req.getMaxStalenessMs());
      load.record(checked);
      out.onNext(ReportAppliedResponse.newBuilder().setServerId(registry.serverId())
          .setClientReportTimeoutMs(registry.clientTimeout().toMillis()).build());
      out.onCompleted();
    } catch (RuntimeException e) {
      out.onError(Errors.toStatus(e));
    }
  }

  private static KeyspaceMap keyspace(DirectorySnapshot snap, String name) {
    Names.keyspace("keyspace", name);
    return snap.keyspace(name);
  }

  static List<MapChange> filter(List<MapChange> changes, Set<String> keyspaces) {
    if (keyspaces.isEmpty()) {
      return changes;
    }
    List<MapChange> out = new ArrayList<>(changes.size());
    for (MapChange c : changes) {
      if (c.getKeyspace().isEmpty() || keyspaces.contains(c.getKeyspace())) {
        out.add(c);
      }
    }
    return out;
  }
}
