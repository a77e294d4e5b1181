package io.shardmap.bench;

import com.google.common.collect.Range;
import java.sql.SQLException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import javax.sql.DataSource;
import org.apache.shardingsphere.driver.api.ShardingSphereDataSourceFactory;
import org.apache.shardingsphere.infra.algorithm.core.config.AlgorithmConfiguration;
import org.apache.shardingsphere.sharding.api.config.ShardingRuleConfiguration;
import org.apache.shardingsphere.sharding.api.config.rule.ShardingTableRuleConfiguration;
import org.apache.shardingsphere.sharding.api.config.strategy.sharding.StandardShardingStrategyConfiguration;
import org.apache.shardingsphere.sharding.api.sharding.standard.PreciseShardingValue;
import org.apache.shardingsphere.sharding.api.sharding.standard.RangeShardingValue;
import org.apache.shardingsphere.sharding.api.sharding.standard.StandardShardingAlgorithm;

/**
 * ShardingSphere-JDBC over the benchmark's shard databases, configured as its documentation sets up a
 * sharded table: data sources {@code ds_0..ds_n-1} (the given pools), logical table {@code orders} with
 * one actual table {@code orders} per data source, and a standard database strategy on {@code id} with a
 * {@code CLASS_BASED} algorithm ({@link IdRanges}) that routes an id to the shard whose range holds it.
 * (The built-in {@code BOUNDARY_RANGE} is an "auto" algorithm: ShardingSphere refuses it on a table with
 * explicit data nodes and would want tables named {@code orders_0..n}, which are not our shards' tables.)
 * Standalone mode, default properties: one connection per data source per query, so results stream
 * ("memory strictly" mode).
 */
final class ShardingSphereSide {
  private ShardingSphereSide() {}

  static DataSource dataSource(DataSource[] shards, long[] shardLow) throws SQLException {
    Map<String, DataSource> sources = new LinkedHashMap<>();
    StringBuilder nodes = new StringBuilder();
    StringBuilder ranges = new StringBuilder();
    for (int i = 0; i < shards.length; i++) {
      sources.put("ds_" + i, shards[i]);
      nodes.append(i == 0 ? "" : ",").append("ds_").append(i).append('.').append(CrossShardCommand.TABLE);
      if (i > 0) {
        ranges.append(i == 1 ? "" : ",").append(shardLow[i]);
      }
    }
    ShardingTableRuleConfiguration table = new ShardingTableRuleConfiguration(CrossShardCommand.TABLE, nodes.toString());
    table.setDatabaseShardingStrategy(new StandardShardingStrategyConfiguration("id", "id_ranges"));
    ShardingRuleConfiguration rule = new ShardingRuleConfiguration();
    rule.getTables().add(table);
    Properties algo = new Properties();
    algo.setProperty("strategy", "STANDARD");
    algo.setProperty("algorithmClassName", IdRanges.class.getName());
    algo.setProperty(IdRanges.BOUNDS, ranges.toString());
    rule.getShardingAlgorithms().put("id_ranges", new AlgorithmConfiguration("CLASS_BASED", algo));
    return ShardingSphereDataSourceFactory.createDataSource("bench", null, sources, List.of(rule), new Properties());
  }

  /**
   * Data source {@code ds_i} holds the ids in [b_i, b_{i+1}) for the sorted lower bounds b_1.. of
   * shards 1.. given in property {@value #BOUNDS} (shard 0 from -inf, the last to +inf): the ranges of
   * the benchmark's shards. ShardingSphere instantiates it by name and calls {@link #init}.
   */
  public static final class IdRanges implements StandardShardingAlgorithm<Long> {
    static final String BOUNDS = "bounds";
    private long[] bounds;

    @Override
    public void init(Properties props) {
      String v = props.getProperty(BOUNDS);
      if (v == null || v.isBlank()) {
        throw new IllegalArgumentException("IdRanges: property '" + BOUNDS + "' (comma-separated lower bounds) is required");
      }
      bounds = Arrays.stream(v.split(",")).map(String::trim).mapToLong(Long::parseLong).toArray();
      for (int i = 1; i < bounds.length; i++) {
        if (bounds[i] <= bounds[i - 1]) {
          throw new IllegalArgumentException("IdRanges: bounds must increase: " + v);
        }
      }
    }

    private int shardOf(long id) {
      int i = 0;
      while (i < bounds.length && id >= bounds[i]) {
        i++;
      }
      return i;
    }

    private static String target(Collection<String> names, int shard) {
      String name = "ds_" + shard;
      if (!names.contains(name)) {
        throw new IllegalStateException("IdRanges: no data source " + name + " among " + names);
      }
      return name;
    }

    @Override
    public String doSharding(Collection<String> names, PreciseShardingValue<Long> value) {
      return target(names, shardOf(value.getValue()));
    }

    @Override
    public Collection<String> doSharding(Collection<String> names, RangeShardingValue<Long> value) {
      Range<Long> r = value.getValueRange();
      int from = r.hasLowerBound() ? shardOf(r.lowerEndpoint()) : 0;
      int to = r.hasUpperBound() ? shardOf(r.upperEndpoint()) : bounds.length;
      List<String> out = new ArrayList<>();
      for (int i = from; i <= to; i++) {
        out.add(target(names, i));
      }
      return out;
    }

    @Override
    public String getType() {
      return "SHARDMAP_BENCH_ID_RANGES";
    }
  }
}
