package io.shardmap.catalog;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertThrows;

import io.shardmap.store.Compare;
import io.shardmap.store.InMemoryMetaStore;
import io.shardmap.store.StoreException;
import io.shardmap.store.Txn;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;

/** Every round trip is recorded once, by kind or by the view's name, with its outcome and duration. */
@Tag("unit")
class MeteredMetaStoreTest {
  private final InMemoryMetaStore store = new InMemoryMetaStore();
  private final List<String> recorded = new ArrayList<>();
  private final long[] now = {0};
  private final MeteredMetaStore metered = new MeteredMetaStore(store, (op, outcome, nanos) ->
      recorded.add(op + "/" + outcome + "/" + nanos), () -> now[0] += 5);

  @Test
  void recordsKindOutcomeAndDuration() throws Exception {
    metered.commit(Txn.builder().put("/a", new byte[] {1}).build()).get();
    metered.commit(Txn.builder().compare(Compare.absent("/a")).put("/a", new byte[] {2}).build()).get();
    metered.get("/a").get();
    metered.getPrefix("/").get();
    metered.as("probe").currentRevision().get();
    store.failNext(1, StoreException.Kind.UNAVAILABLE);
    assertThrows(ExecutionException.class, () -> metered.get("/a").get());
    assertEquals(List.of("txn/ok/5", "txn/conflict/5", "get/ok/5", "get_prefix/ok/5", "probe/ok/5", "get/error/5"),
        recorded);
  }

  @Test
  void aViewDoesNotCloseTheStore() throws Exception {
    metered.as("x").close();
    metered.get("/a").get();
    metered.close();
    assertThrows(ExecutionException.class, () -> store.get("/a").get());
  }
}
