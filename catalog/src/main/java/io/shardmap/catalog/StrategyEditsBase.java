package io.shardmap.catalog;

import com.google.protobuf.MessageLite;
import io.shardmap.core.KeyspaceMap;
import io.shardmap.proto.v1.Strategy;
import io.shardmap.store.Txn;
import java.util.Set;

/**
 * What every strategy's edit class shares: the {@link MapEdits} whose rules it applies (the ownership
 * guard, the layout record's compare-and-put), its {@link CatalogPaths}, and which strategy it is.
 */
abstract class StrategyEditsBase implements StrategyEdits {
  final MapEdits edits;
  final CatalogPaths paths;
  private final Strategy strategy;

  StrategyEditsBase(MapEdits edits, Strategy strategy) {
    this.edits = edits;
    this.paths = edits.paths();
    this.strategy = strategy;
  }

  @Override
  public final Strategy strategy() {
    return strategy;
  }

  final Txn.Builder guardOwners(Txn.Builder txn, String keyspace, Set<String> owners, ReferenceTables refs) {
    return edits.guardOwners(txn, keyspace, owners, refs);
  }

  final Txn.Builder layoutTxn(KeyspaceMap k, MessageLite newLayout) {
    return edits.layoutTxn(k, newLayout);
  }

  static byte[] bytes(MessageLite m) {
    return m.toByteArray();
  }
}
