package io.shardmap.server.internal;

import com.google.protobuf.InvalidProtocolBufferException;
import io.shardmap.catalog.CatalogPaths;
import io.shardmap.core.ErrorCode;
import io.shardmap.core.Names;
import io.shardmap.core.ShardmapException;
import io.shardmap.proto.v1.ListReferenceTablesResponse;
import io.shardmap.proto.v1.ReferenceTable;
import io.shardmap.store.KeyValue;
import io.shardmap.store.MetaStore;
import io.shardmap.store.RangeResult;
import java.time.Duration;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.TimeUnit;
import java.util.function.Predicate;

/**
 * {@code ShardMapService.ListReferenceTables}: the reference table records that apply to a keyspace (those
 * naming it, and those of every keyspace), read from etcd with one linearizable read of the records' prefix,
 * so a client refused for a stale reference epoch sees every record written before it asked. Nothing here
 * blocks the transport thread: the answer completes when etcd answers (bounded by the etcd timeout).
 */
public final class ReferenceTables {
  private final MetaStore store;
  private final CatalogPaths paths;
  /** Whether the server's watched map has the keyspace (a keyspace it does not have yet is asked of etcd). */
  private final Predicate<String> knownKeyspace;
  private final Duration timeout;

  public ReferenceTables(MetaStore store, CatalogPaths paths, Predicate<String> knownKeyspace, Duration timeout) {
    this.store = store;
    this.paths = paths;
    this.knownKeyspace = knownKeyspace;
    this.timeout = timeout;
  }

  /**
   * The records of {@code keyspace}, sorted by table, with the revision they were read at.
   *
   * @throws ShardmapException INVALID_ARGUMENT for a malformed keyspace name (thrown at once); the future
   *     fails with NOT_FOUND for a keyspace that does not exist, INTERNAL for a record that does not parse
   */
  public CompletableFuture<ListReferenceTablesResponse> list(String keyspace) {
    Names.keyspace("keyspace", keyspace);
    return store.getPrefix(paths.referenceTablesPrefix()).orTimeout(timeout.toMillis(), TimeUnit.MILLISECONDS)
        .thenCompose(records -> {
          if (knownKeyspace.test(keyspace)) {
            return CompletableFuture.completedFuture(records);
          }
          // Not in this server's map: it may be newer than the watch has brought, so etcd decides.
          return store.get(paths.spec(keyspace)).orTimeout(timeout.toMillis(), TimeUnit.MILLISECONDS)
              .thenApply(spec -> {
                if (spec.kvs().isEmpty()) {
                  throw ShardmapException.notFound("keyspace '" + keyspace + "' does not exist");
                }
                return records;
              });
        })
        .thenApply(records -> answer(keyspace, records));
  }

  private ListReferenceTablesResponse answer(String keyspace, RangeResult records) {
    ListReferenceTablesResponse.Builder b = ListReferenceTablesResponse.newBuilder().setRevision(records.revision());
    for (KeyValue kv : records.kvs()) {
      ReferenceTable t;
      try {
        t = ReferenceTable.parseFrom(kv.value());
      } catch (InvalidProtocolBufferException e) {
        throw new ShardmapException(ErrorCode.INTERNAL, "the reference table record at " + kv.key()
            + " does not parse (" + e.getMessage() + "); rewrite it with shardmap-migrator reference add");
      }
      if (t.getAllKeyspaces() || t.getKeyspacesList().contains(keyspace)) {
        b.addTables(t);
      }
    }
    return b.build(); // etcd returns the keys sorted, and a record's key is its table's canonical name
  }
}
