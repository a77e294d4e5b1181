package io.shardmap.server.internal;

import io.grpc.stub.StreamObserver;
import io.shardmap.core.DirectorySnapshot;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.core.Names;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.GetSizesRequest;
import io.shardmap.proto.v1.GetSizesResponse;
import io.shardmap.proto.v1.KeyspaceSizes;
import io.shardmap.proto.v1.RefreshSizesRequest;
import io.shardmap.proto.v1.RefreshSizesResponse;
import java.util.concurrent.Executor;
import java.util.function.Supplier;

/**
 * The GetSizes and RefreshSizes handlers of FleetService (docs/sizes.md). GetSizes reads the latest sizes from
 * etcd (every server answers alike); RefreshSizes takes them now on this server through its {@link
 * SizeSampler}, writes them and returns them. Both run off the transport threads, on {@code executor}
 * (GetSizes) or the sampler's pool (RefreshSizes).
 *
 * <p>Refused, with nothing read or written: an empty or malformed keyspace name (INVALID_ARGUMENT naming
 * {@code keyspace}), an unknown keyspace (NOT_FOUND), a keyspace that declares no sharded table
 * (FAILED_PRECONDITION), and RefreshSizes on a server without database credentials (FAILED_PRECONDITION).
 */
public final class SizesRpc {
  private final Supplier<DirectorySnapshot> snapshots;
  /** Null when this server has no database credentials (no --resolver-db-user). */
  private volatile SizeSampler sampler;
  private final SizeRecords records;
  private final Executor executor;

  public SizesRpc(Supplier<DirectorySnapshot> snapshots, SizeRecords records, Executor executor) {
    this.snapshots = snapshots;
    this.records = records;
    this.executor = executor;
  }

  /** The sampler RefreshSizes runs on (set once the server id is known; null: none). */
  public void sampler(SizeSampler s) {
    this.sampler = s;
  }

  public void getSizes(GetSizesRequest req, StreamObserver<GetSizesResponse> out) {
    executor.execute(() -> {
      try {
        KeyspaceMap km = sizable(req.getKeyspace());
        // Never taken yet: an empty record of the keyspace (taken_unix_ms 0).
        KeyspaceSizes s = records.read(km.name()).orElse(KeyspaceSizes.newBuilder().setKeyspace(km.name()).build());
        out.onNext(GetSizesResponse.newBuilder().setSizes(s).build());
        out.onCompleted();
      } catch (InterruptedException e) {
        Thread.currentThread().interrupt();
        out.onError(Errors.toStatus(e));
      } catch (Exception e) {
        out.onError(Errors.toStatus(e));
      }
    });
  }

  public void refreshSizes(RefreshSizesRequest req, StreamObserver<RefreshSizesResponse> out) {
    KeyspaceMap km;
    SizeSampler sampler = this.sampler;
    try {
      km = sizable(req.getKeyspace());
      if (sampler == null) {
        throw ShardmapException.precondition("this directory server has no database role to read the shards with "
            + "(it was started without --resolver-db-user); ask one that has, or read the latest sizes with "
            + "GetSizes");
      }
    } catch (RuntimeException e) {
      out.onError(Errors.toStatus(e));
      return;
    }
    sampler.refresh(km.name(), req.getExact()).whenComplete((s, e) -> {
      if (e != null) {
        out.onError(Errors.toStatus(e));
      } else {
        out.onNext(RefreshSizesResponse.newBuilder().setSizes(s).build());
        out.onCompleted();
      }
    });
  }

  /** The keyspace, if sizes can be taken of it; else the refusal the class comment lists. */
  private KeyspaceMap sizable(String name) {
    if (name.isEmpty()) {
      throw ShardmapException.invalid("keyspace", "required");
    }
    Names.keyspace("keyspace", name);
    KeyspaceMap km = snapshots.get().keyspace(name);
    if (km == null) {
      throw ShardmapException.notFound("keyspace: no keyspace '" + name + "'");
    }
    if (km.spec().getTablesCount() == 0) {
      throw ShardmapException.precondition("keyspace: '" + name + "' declares no sharded tables, so it has no size; "
          + "declare tables with `shardmapctl keyspace create " + name + " ... --table NAME:KEY_COLUMN` "
          + "(CreateKeyspace's spec.tables)");
    }
    if (!SizeSampler.sizable(km)) {
      throw ShardmapException.precondition("keyspace: '" + name + "' has no usable map: "
          + (km.hasLayout() ? km.broken() : "no layout in etcd"));
    }
    return km;
  }
}
