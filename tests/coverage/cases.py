"""Library coverage cases: classes users keep in a notebook, each made, then changed.

A ``Case`` binds one or more names in the ``create`` cell and changes them in the ``modify``
cell: in place where the class allows it, by rebinding where it is immutable (the report says
which, measured in the kernel). ``observe`` is an expression exercising what the value does
(a figure's title, a model's predictions, a generator's next draw without consuming it), for
classes the value-based probe cannot see into. ``refused`` is the expected reason (a
substring) for classes that cannot be saved: the checkpoint must say so, undo must not fail.
``unloadable`` is the expected reason for a class that pickles but does not load back: an undo
must keep its live value and name it, never fail.
``by_behaviour`` judges a value by its observation alone, for classes whose private attributes
hold caches filled on first use (plotly, pandas scalars, PIL, bs4) or ids of other objects
(keras): the probe's walk of their attributes would differ for values that behave the same; and
for a PyTorch optimizer under an LR scheduler, whose wrapper of ``optimizer.step`` (it serves a
warning) is not kept, as torch's own pickling does not keep it.

Cases are grouped in batches: one real kernel runs a whole batch, so the suite starts a few
kernels rather than one per class.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass

__all__ = ["BATCHES", "Batch", "Case"]


@dataclass(frozen=True)
class Case:
    """One class: the names it binds, the cells that make and change them, how to observe."""

    names: tuple[str, ...]
    create: str
    modify: str
    observe: str = ""
    refused: str = ""
    by_behaviour: bool = False
    unloadable: str = ""

    @property
    def name(self) -> str:
        return self.names[0]


def case(names: str, create: str, modify: str = "", observe: str = "", refused: str = "",
         by_behaviour: bool = False, unloadable: str = "") -> Case:
    return Case(tuple(names.split()), textwrap.dedent(create).strip(),
                textwrap.dedent(modify).strip(), observe, refused, by_behaviour, unloadable)


@dataclass(frozen=True)
class Batch:
    """Cases run in one kernel, after ``setup`` imported what they need."""

    title: str
    setup: str
    cases: tuple[Case, ...]
    env: tuple[tuple[str, str], ...] = ()  # the kernel's environment, as a user's would be

    @property
    def create(self) -> str:
        return "\n".join(c.create for c in self.cases)

    @property
    def modify(self) -> str:
        return "\n".join(c.modify for c in self.cases if c.modify)

    @property
    def names(self) -> set[str]:
        return {n for c in self.cases for n in c.names}


STANDARD_LIBRARY = Batch("standard library", """
    import array, collections, dataclasses, datetime, decimal, email.message, enum, fractions
    import functools, ipaddress, itertools, operator, pathlib, queue, random, re, statistics
    import string, textwrap, threading, types, typing, uuid, zoneinfo, argparse, difflib, io
    import xml.etree.ElementTree as ET
    import hashlib
    """, (
    case("when", "when = datetime.datetime(2024, 3, 31, 1, 30, tzinfo=zoneinfo.ZoneInfo("
         "'Europe/Paris'))", "when = when + datetime.timedelta(hours=1)"),
    case("day", "day = datetime.date(2020, 2, 29)", "day = day.replace(year=2024)"),
    case("clock", "clock = datetime.time(12, 30, 15, 5)", "clock = clock.replace(hour=1)"),
    case("delta", "delta = datetime.timedelta(days=2, microseconds=7)", "delta = delta * 3"),
    case("offset", "offset = datetime.timezone(datetime.timedelta(hours=-3), 'BRT')",
         "offset = datetime.timezone.utc"),
    case("zone", "zone = zoneinfo.ZoneInfo('America/New_York')",
         "zone = zoneinfo.ZoneInfo('Asia/Tokyo')"),
    case("price", "price = decimal.Decimal('19.990')", "price = price * 3"),
    case("context", "context = decimal.Context(prec=12)", "context.prec = 5",
         observe="context.prec"),
    case("ratio", "ratio = fractions.Fraction(3, 7)", "ratio = ratio ** 2"),
    case("path", "path = pathlib.Path('/data') / 'raw' / 'x.csv'",
         "path = path.with_suffix('.parquet')"),
    case("pure", "pure = pathlib.PureWindowsPath('C:/Users/me')", "pure = pure / 'notes'"),
    case("color Color", """
        class Color(enum.Enum):
            RED = 1
            GREEN = 2
        color = Color.RED""", "color = Color.GREEN", observe="[color is Color.GREEN, "
         "color.name]"),
    case("point Point", """
        @dataclasses.dataclass
        class Point:
            x: float
            y: float = 0.0
        point = Point(1.5)""", "point.y = -2.0",
         observe="[isinstance(point, Point), dataclasses.astuple(point)]"),
    case("pair Pair", """
        class Pair(typing.NamedTuple):
            left: int
            right: str
        pair = Pair(1, 'a')""", "pair = pair._replace(right='b')",
         observe="[isinstance(pair, Pair), pair.right]"),
    case("ordered", "ordered = collections.OrderedDict(a=1, b=2)",
         "ordered.move_to_end('a')", observe="list(ordered)"),
    case("defaults", "defaults = collections.defaultdict(list); defaults['k'].append(1)",
         "defaults['j'].append(2)", observe="defaults.default_factory"),
    case("counts", "counts = collections.Counter('mississippi')", "counts.update('ssss')",
         observe="counts.most_common(2)"),
    case("window", "window = collections.deque(range(5), maxlen=5)", "window.append(9)",
         observe="[list(window), window.maxlen]"),
    case("chain", "chain = collections.ChainMap({'a': 1}, {'a': 2, 'b': 3})",
         "chain.maps[0]['b'] = 4", observe="dict(chain)"),
    case("userdict", "userdict = collections.UserDict(k=1)", "userdict['m'] = 2"),
    case("pattern", "pattern = re.compile(r'(\\d+)-(\\w+)', re.IGNORECASE)",
         "pattern = re.compile(pattern.pattern + '$')",
         observe="[pattern.flags, pattern.findall('12-ab 3-c')]"),
    case("binary", "binary = io.BytesIO(b'header'); binary.seek(2)",
         "binary.write(b'XY'); binary.seek(1)",
         observe="[binary.getvalue(), binary.tell()]"),
    case("text", "text = io.StringIO('line one\\n'); text.seek(0, 2)",
         "text.write('line two\\n')", observe="[text.getvalue(), text.tell()]"),
    case("numbers", "numbers = array.array('d', [1.0, 2.5])", "numbers.append(-1.0)"),
    case("raw view", "raw = bytearray(b'abcdef'); view = memoryview(raw)", "view[0] = 90",
         observe="[bytes(raw), view.tobytes(), view.obj is raw]"),
    case("scaled", "scaled = functools.partial(pow, 2)",
         "scaled = functools.partial(pow, 3)", observe="scaled(4)"),
    case("getter", "getter = operator.itemgetter(1, 0)", "getter = operator.attrgetter('real')"),
    case("spaced", "spaced = types.SimpleNamespace(a=1, nested=[1])",
         "spaced.nested.append(2); spaced.b = 3"),
    case("arguments", "arguments = argparse.Namespace(epochs=3, lr=0.1)",
         "arguments.epochs = 10"),
    case("ident", "ident = uuid.UUID('12345678-1234-5678-1234-567812345678')",
         "ident = uuid.uuid5(ident, 'x')"),
    case("address", "address = ipaddress.ip_address('192.168.0.1')", "address = address + 5"),
    case("network", "network = ipaddress.ip_network('10.0.0.0/8')",
         "network = network.supernet()"),
    case("template", "template = string.Template('$who likes $what')",
         "template.template = '$who hates $what'",
         observe="template.substitute(who='tim', what='kung pao')"),
    case("wrapper", "wrapper = textwrap.TextWrapper(width=20)", "wrapper.width = 8",
         observe="wrapper.wrap('the quick brown fox jumps')"),
    case("matcher", "matcher = difflib.SequenceMatcher(None, 'abcd', 'bcde')",
         "matcher.set_seq2('abxd')", observe="matcher.ratio()"),
    case("rng", "rng = random.Random(42)", "rng.random()",
         observe="random.Random(0).getstate() != rng.getstate() and rng.getstate()[1][:4]"),
    case("normal", "normal = statistics.NormalDist(1.0, 2.0)", "normal = normal * 2",
         observe="[normal.mean, normal.stdev]"),
    case("message", """
        message = email.message.EmailMessage()
        message['Subject'] = 'hello'""", "message.set_content('body text')",
         observe="message.as_string()"),
    case("element", "element = ET.Element('root', id='1'); ET.SubElement(element, 'child')",
         "element.set('id', '2'); ET.SubElement(element, 'other')",
         observe="ET.tostring(element)"),
    case("counter", "counter = itertools.count(5, 2)", "next(counter)",
         observe="repr(counter)"),
    case("inbox", "inbox = queue.Queue(); inbox.put(1)", "inbox.put(2)",
         refused="a lock cannot be saved"),
    case("lock", "lock = threading.Lock()", "lock.acquire()", refused="a lock cannot be saved"),
    case("digest", "digest = hashlib.sha256(b'abc')", "digest.update(b'd')",
         refused="cannot be saved"),
    case("squares", "squares = (i * i for i in range(10))", "next(squares)",
         refused="generator"),
))

NUMERIC = Batch("numpy, pandas, pyarrow, polars", """
    import numpy as np
    import pandas as pd
    import pyarrow as pa
    import polars as pl
    """, (
    case("matrix", "matrix = np.arange(12.0).reshape(3, 4)", "matrix[1, 2] = -1"),
    case("base column", "base = np.arange(20); column = base.reshape(4, 5)[:, 1]",
         "column[0] = 99"),
    case("masked", "masked = np.ma.masked_less(np.arange(10.0), 3)",
         "masked[5] = np.ma.masked"),
    case("records", "records = np.zeros(4, dtype=[('id', 'i4'), ('score', 'f8')])",
         "records['score'][2] = 0.5"),
    case("recarray", "recarray = np.rec.fromarrays([[1, 2], [3.0, 4.0]], names='a,b')",
         "recarray.a[0] = 7"),
    case("stamps", "stamps = np.arange('2024-01', '2024-06', dtype='datetime64[D]')",
         "stamps[1] = np.datetime64('NaT')"),
    case("generator", "generator = np.random.default_rng(7)", "generator.random(3)",
         observe="generator.bit_generator.state"),
    case("legacy", "legacy = np.random.RandomState(3)", "legacy.rand(2)",
         observe="legacy.get_state()[2]"),
    case("npmatrix", "npmatrix = np.asmatrix(np.eye(2))", "npmatrix[0, 1] = 3"),
    case("scalar", "scalar = np.float32(1.5)", "scalar = scalar * 2"),
    case("moment", "moment = np.datetime64('2024-02-29T10:00')",
         "moment = moment + np.timedelta64(1, 'D')"),
    case("dtype", "dtype = np.dtype([('x', '<f4'), ('y', '<i2')])", "dtype = dtype.newbyteorder()"),
    case("poly", "poly = np.polynomial.Polynomial([1, 2, 3])", "poly.coef[0] = 5",
         observe="[poly(2.0), poly.domain.tolist(), poly.window.tolist(), poly.symbol]",
         by_behaviour=True),
    case("poly1d", "poly1d = np.poly1d([1, 0, -1])", "poly1d = poly1d * 2",
         observe="poly1d(3)"),
    case("frame", "frame = pd.DataFrame({'a': range(6), 'b': list('xyzxyz')})",
         "frame.loc[2, 'a'] = 50; frame['c'] = frame.a * 2"),
    case("series", "series = pd.Series([1.5, 2.5, None], name='s')", "series.iloc[2] = 0.0"),
    case("index", "index = pd.Index(['a', 'b', 'c'], name='letters')",
         "index = index.append(pd.Index(['d']))"),
    case("ranged", "ranged = pd.RangeIndex(0, 10, 2)", "ranged = ranged[1:]"),
    case("multi", "multi = pd.MultiIndex.from_product([[1, 2], ['u', 'v']], names=['n', 'l'])",
         "multi = multi.set_names(['N', 'L'])"),
    case("dates", "dates = pd.date_range('2024-01-01', periods=5, freq='W', tz='UTC')",
         "dates = dates.shift(1)"),
    case("periods", "periods = pd.period_range('2020-01', periods=4, freq='M')",
         "periods = periods + 1"),
    case("intervals", "intervals = pd.interval_range(0, 5)", "intervals = intervals[::-1]"),
    case("categories", "categories = pd.Categorical(['lo', 'hi', 'lo'], "
         "categories=['lo', 'hi'], ordered=True)", "categories[0] = 'hi'",
         observe="[list(categories), list(categories.categories), categories.ordered]"),
    case("cat_index", "cat_index = pd.CategoricalIndex(['p', 'q', 'p'])",
         "cat_index = cat_index.add_categories(['r'])",
         observe="list(cat_index.categories)"),
    case("strings", "strings = pd.Series(['a', None, 'c'], dtype='string[pyarrow]')",
         "strings.iloc[1] = 'b'"),
    case("arrow_backed", "arrow_backed = pd.Series([1, 2, None], "
         "dtype=pd.ArrowDtype(pa.int64()))", "arrow_backed.iloc[2] = 3"),
    case("sparse", "sparse = pd.arrays.SparseArray([0, 0, 1, 0, 2])", "sparse = sparse * 2"),
    case("integers", "integers = pd.array([1, None, 3], dtype='Int64')", "integers[1] = 2"),
    case("timestamp", "timestamp = pd.Timestamp('2024-03-10 01:30', tz='US/Eastern')",
         "timestamp = timestamp + pd.Timedelta(hours=5)"),
    case("timedelta", "timedelta = pd.Timedelta('1 days 2 hours')", "timedelta = timedelta * 2",
         observe="str(timedelta)", by_behaviour=True),
    case("period", "period = pd.Period('2024Q1', freq='Q')", "period = period + 2",
         observe="[str(period), period.freqstr]", by_behaviour=True),
    case("interval", "interval = pd.Interval(0.5, 1.5, closed='left')",
         "interval = pd.Interval(1, 2)"),
    case("dateoffset", "dateoffset = pd.DateOffset(months=2)",
         "dateoffset = pd.offsets.BusinessDay(3)"),
    case("grouped", "grouped = frame.groupby('b')", "grouped = frame.groupby('b', sort=False)",
         observe="grouped.a.sum().to_dict()"),
    case("series_grouped", "series_grouped = series.groupby([0, 1, 0])",
         "series_grouped = series.groupby([1, 1, 0])",
         observe="series_grouped.sum().to_dict()"),
    case("rolling", "rolling = frame.a.rolling(2)", "rolling = frame.a.rolling(3)",
         observe="rolling.sum().tolist()"),
    case("table", "table = pa.table({'n': [1, 2, 3], 's': ['a', 'b', None]})",
         "table = table.append_column('f', pa.array([0.5, 1.5, 2.5]))"),
    case("pa_array", "pa_array = pa.array([1.0, None, 3.0])",
         "pa_array = pa.concat_arrays([pa_array, pa.array([4.0])])"),
    case("chunked", "chunked = pa.chunked_array([[1, 2], [3]])",
         "chunked = pa.chunked_array(chunked.chunks + [pa.array([4])])"),
    case("batch", "batch = pa.record_batch({'k': ['x', 'y']})",
         "batch = batch.add_column(1, 'v', pa.array([1, 2]))"),
    case("schema", "schema = pa.schema([('a', pa.int8())])",
         "schema = schema.append(pa.field('b', pa.string()))"),
    case("pl_frame", "pl_frame = pl.DataFrame({'a': [1, 2, 3], 'b': ['x', 'y', 'z']})",
         "pl_frame.columns = ['A', 'B']",
         observe="[pl_frame.columns, pl_frame.rows(), str(pl_frame.schema)]"),
    case("pl_series", "pl_series = pl.Series('s', [1.0, 2.0, 3.0])", "pl_series[1] = 20.0",
         observe="pl_series.to_list()"),
    case("pl_lazy", "pl_lazy = pl.LazyFrame({'a': [3, 1, 2]}).sort('a')",
         "pl_lazy = pl_lazy.with_columns(b=pl.col('a') * 2)",
         observe="pl_lazy.collect().rows()"),
))

SCIENCE = Batch("scipy, scikit-learn, statsmodels, patsy", """
    import numpy as np
    from scipy import interpolate, optimize, sparse, spatial, stats
    from sklearn.cluster import KMeans
    from sklearn.compose import ColumnTransformer
    from sklearn.decomposition import PCA
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LinearRegression, LogisticRegression
    from sklearn.model_selection import GridSearchCV
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler
    from sklearn.tree import DecisionTreeRegressor
    import statsmodels.api as sm
    import statsmodels.formula.api as smf
    import pandas as pd
    import patsy
    X = np.random.default_rng(0).normal(size=(40, 3))
    y = (X[:, 0] + X[:, 1] > 0).astype(int)
    table = pd.DataFrame({'a': X[:, 0], 'b': X[:, 1], 'c': X[:, 2] + 3, 'k': ['u', 'v'] * 20})
    """, (
    case("csr", "csr = sparse.csr_matrix(np.eye(4))", "csr[0, 3] = 5.0"),
    case("csc", "csc = sparse.csc_array(np.eye(3))", "csc[1, 1] = -2.0",
         observe="csc.toarray().tolist()"),
    case("coo", "coo = sparse.coo_array(([1.0, 2.0], ([0, 1], [1, 0])), shape=(2, 2))",
         "coo.data[0] = 9.0", observe="coo.toarray().tolist()"),
    case("lil", "lil = sparse.lil_matrix((3, 3))", "lil[2, 0] = 1.5",
         observe="lil.toarray().tolist()"),
    case("dok", "dok = sparse.dok_array((3, 3))", "dok[1, 2] = 4.0",
         observe="dok.toarray().tolist()"),
    case("frozen", "frozen = stats.norm(loc=1.0, scale=2.0)", "frozen = stats.gamma(2.0)",
         observe="[frozen.mean(), frozen.cdf(1.0)]"),
    case("interp", "interp = interpolate.interp1d([0, 1, 2], [0.0, 1.0, 4.0])",
         "interp.y[2] = 8.0", observe="interp(1.5).tolist()"),
    case("spline", "spline = interpolate.CubicSpline([0, 1, 2, 3], [0.0, 1.0, 0.0, 1.0])",
         "spline.c[0, 0] = 3.0", observe="spline(0.5).tolist()"),
    case("grid", "grid = interpolate.RegularGridInterpolator(([0, 1], [0, 1]), "
         "np.array([[0.0, 1.0], [2.0, 3.0]]))", "grid.values[0, 0] = 10.0",
         observe="grid([[0.5, 0.5]]).tolist()"),
    case("kdtree", "kdtree = spatial.KDTree(X)", "kdtree = spatial.KDTree(X[:10])",
         observe="kdtree.query([0, 0, 0])[1].tolist()"),
    case("optimum", "optimum = optimize.minimize(lambda v: ((v - 1) ** 2).sum(), np.zeros(2))",
         "optimum.note = 'checked'", observe="[optimum.x.round(4).tolist(), optimum.get('note')]"),
    case("linear", "linear = LinearRegression().fit(X, X[:, 0] * 2)",
         "linear.fit(X, X[:, 1] * 3)", observe="linear.predict(X[:2]).round(6).tolist()"),
    case("logistic", "logistic = LogisticRegression().fit(X, y)", "logistic.set_params(C=0.1)",
         observe="[logistic.C, logistic.predict_proba(X[:2]).round(6).tolist()]"),
    case("forest", "forest = RandomForestClassifier(n_estimators=5, random_state=0).fit(X, y)",
         "forest.fit(X[:20], y[:20])", observe="forest.predict_proba(X[:3]).tolist()"),
    case("tree", "tree = DecisionTreeRegressor(max_depth=2).fit(X, X[:, 2])",
         "tree.fit(X, X[:, 0])", observe="tree.predict(X[:3]).tolist()"),
    case("scaler", "scaler = StandardScaler().fit(X)", "scaler.fit(X * 2)",
         observe="scaler.transform(X[:1]).round(6).tolist()"),
    case("pipeline", "pipeline = make_pipeline(StandardScaler(), LogisticRegression())"
         ".fit(X, y)", "pipeline.steps[1][1].set_params(C=5.0)",
         observe="[pipeline[-1].C, pipeline.predict(X[:4]).tolist()]"),
    case("columns", """
        columns = ColumnTransformer([('onehot', OneHotEncoder(), ['c'])], remainder='passthrough')
        columns.fit(pd.DataFrame({'c': ['a', 'b', 'a'], 'n': [1, 2, 3]}))""",
         "columns.set_params(remainder='drop')", observe="columns.remainder"),
    case("kmeans", "kmeans = KMeans(n_clusters=2, n_init=1, random_state=0).fit(X)",
         "kmeans.fit(X[:20])", observe="kmeans.cluster_centers_.round(6).tolist()"),
    case("pca", "pca = PCA(n_components=2).fit(X)", "pca.fit(X[::2])",
         observe="pca.explained_variance_.round(6).tolist()"),
    case("search", "search = GridSearchCV(DecisionTreeRegressor(), {'max_depth': [1, 2]}, cv=2)"
         ".fit(X, X[:, 0])", "search.fit(X, X[:, 1])", observe="search.best_params_"),
    case("ols", "ols = sm.OLS(X[:, 0], sm.add_constant(X[:, 1:])).fit()",
         "ols.note = 'first model'", observe="[ols.params.round(6).tolist(), "
         "getattr(ols, 'note', None)]"),
    case("formula", "formula = smf.ols('a ~ b', pd.DataFrame({'a': X[:, 0], 'b': X[:, 1]}))"
         ".fit()", "formula.note = 'second'",
         observe="[formula.params.round(6).to_dict(), getattr(formula, 'note', None)]"),
    case("glm", "glm = sm.GLM(y, sm.add_constant(X), family=sm.families.Binomial())",
         "glm.note = 'unfitted'", observe="[glm.exog.shape, getattr(glm, 'note', None)]"),
    # patsy refuses pickling; its matrices and their DesignInfo are saved by value, and the
    # restored DesignInfo builds the same matrix for new data (center keeps its mean).
    case("design response", "response, design = patsy.dmatrices('a ~ b + center(c) + "
         "np.log(c) + C(k)', table)", "design[0, 1] = 9.0",
         observe="[design.design_info.column_names, design[:2].round(6).tolist(), "
         "patsy.build_design_matrices([design.design_info], table[:2])[0].round(6).tolist()]"),
    case("terms", "terms = patsy.dmatrix('b + I(b ** 2)', table).design_info",
         "terms = terms.subset(['b'])", observe="terms.column_names"),
    case("design_fit", "design_fit = sm.OLS(response, design).fit()",
         "design_fit.note = 'on a design matrix'",
         observe="[design_fit.params.round(6).tolist(), getattr(design_fit, 'note', None)]"),
    case("coefs", "coefs = pd.Series(np.linalg.lstsq(design, response, rcond=None)[0].squeeze(),"
         " index=design.design_info.column_names)", "coefs['b'] = 0.0",
         observe="coefs.round(6).to_dict()"),
))

PLOTS = Batch("matplotlib, seaborn, plotly, bokeh, altair", """
    import matplotlib
    matplotlib.use('agg')
    import matplotlib.pyplot as plt
    from matplotlib.colors import ListedColormap, Normalize
    from matplotlib.figure import Figure
    import numpy as np
    import pandas as pd
    import seaborn as sns
    import plotly.graph_objects as go
    from bokeh.models import ColumnDataSource, HoverTool, Range1d, Slider
    from bokeh.plotting import figure as bokeh_figure
    import altair as alt
    tips = pd.DataFrame({'x': np.arange(12.0), 'y': np.arange(12.0) ** 2,
                         'g': ['a', 'b', 'c'] * 4})
    """, (
    case("fig ax line", """
        fig = Figure()
        ax = fig.add_subplot()
        (line,) = ax.plot([1, 2, 3], [4, 5, 6])""",
         "ax.set_title('changed'); line.set_ydata([0, 0, 1])",
         observe="[fig.axes[0] is ax, ax.lines[0] is line, ax.get_title(), "
                 "list(map(float, line.get_ydata()))]"),
    case("pyplot_fig pyplot_ax scatter", "pyplot_fig, pyplot_ax = plt.subplots(); "
         "scatter = pyplot_ax.scatter([1, 2], [3, 4])", "scatter.set_sizes([50, 60])",
         observe="[scatter.get_sizes().tolist(), scatter.axes is pyplot_ax]"),
    case("image", "image = pyplot_ax.imshow(np.eye(3))", "image.set_data(np.ones((3, 3)))",
         observe="image.get_array().tolist()"),
    case("label", "label = ax.text(0.5, 0.5, 'note')", "label.set_text('edited')",
         observe="[label.get_text(), label.axes is ax]"),
    case("legend", "legend = ax.legend(['series'])", "legend.set_title('key')",
         observe="legend.get_title().get_text()"),
    case("cmap", "cmap = ListedColormap(['red', 'blue'])", "cmap.set_under('black')",
         observe="cmap.get_under()"),
    case("norm", "norm = Normalize(0, 1)", "norm.vmax = 10", observe="norm(5.0)"),
    case("facet", "facet = sns.FacetGrid(tips, col='g')", "facet.set_axis_labels('X', 'Y')",
         observe="[a.get_xlabel() for a in facet.axes.flat]"),
    case("joint", "joint = sns.JointGrid(data=tips, x='x', y='y')",
         "joint.ax_joint.set_title('joint')", observe="joint.ax_joint.get_title()"),
    case("plotly_fig", "plotly_fig = go.Figure(go.Scatter(x=[1, 2], y=[3, 1]))",
         "plotly_fig.update_layout(title_text='updated')", observe="plotly_fig.to_dict()",
         by_behaviour=True),
    case("trace", "trace = go.Bar(x=['a', 'b'], y=[1, 2])", "trace.marker.color = 'red'",
         observe="trace.to_plotly_json()"),
    case("layout", "layout = go.Layout(width=400)", "layout.height = 300",
         observe="layout.to_plotly_json()"),
    case("plot renderer", "plot = bokeh_figure(title='first'); "
         "renderer = plot.line([1, 2, 3], [3, 2, 1])",
         "plot.title.text = 'second'; renderer.visible = False",
         observe="[plot.title.text, renderer.visible, renderer in plot.renderers, "
                 "list(renderer.data_source.data['y'])]"),
    case("source", "source = ColumnDataSource({'x': [1, 2], 'y': [3, 4]})",
         "source.data = {'x': [1, 2, 3], 'y': [0, 0, 0]}",
         observe="{k: list(v) for k, v in source.data.items()}"),
    case("span", "span = Range1d(0, 10)", "span.end = 20", observe="[span.start, span.end]"),
    case("hover", "hover = HoverTool(tooltips=[('x', '@x')])",
         "hover.tooltips = [('y', '@y')]", observe="hover.tooltips"),
    case("bokeh_slider", "bokeh_slider = Slider(start=0, end=10, value=1, title='n')",
         "bokeh_slider.value = 7", observe="bokeh_slider.value"),
    case("chart", "chart = alt.Chart(tips).mark_point().encode(x='x', y='y')",
         "chart.title = 'altered'", observe="chart.to_dict().get('title')"),
))

DEEP_LEARNING = Batch("PyTorch, keras", """
    import torch
    from torch import nn
    from torch.utils.data import DataLoader, TensorDataset
    import keras
    torch.manual_seed(0)
    """, (
    case("tensor", "tensor = torch.arange(6.0).reshape(2, 3)", "tensor[0, 1] = -5.0"),
    case("halves", "halves = torch.ones(4, dtype=torch.bfloat16)", "halves[2] = 3.0"),
    case("complexes", "complexes = torch.zeros(3, dtype=torch.complex64)", "complexes[1] = 1j"),
    case("tensor_view", "tensor_view = tensor[:, 1]", "", observe="tensor_view._base is tensor"),
    case("coo_tensor", "coo_tensor = torch.eye(3).to_sparse()",
         "coo_tensor = coo_tensor * 2"),
    case("parameter", "parameter = nn.Parameter(torch.ones(2))",
         "parameter.data[0] = 4.0"),
    case("dense", "dense = nn.Linear(3, 2)", "dense.weight.data.fill_(0.5)",
         observe="dense(torch.ones(1, 3)).tolist()"),
    case("net", "net = nn.Sequential(nn.Linear(3, 4), nn.ReLU(), nn.Linear(4, 1))",
         "net[0].bias.data.zero_()", observe="net(torch.ones(2, 3)).tolist()"),
    case("tiny Tiny", """
        class Tiny(nn.Module):
            def __init__(self):
                super().__init__()
                self.scale = nn.Parameter(torch.tensor(2.0))
            def forward(self, x):
                return x * self.scale
        tiny = Tiny()""", "tiny.scale.data += 1", observe="tiny(torch.ones(2)).tolist()"),
    case("sgd", "sgd = torch.optim.SGD(net.parameters(), lr=0.1, momentum=0.9)", """
        net(torch.ones(2, 3)).sum().backward()
        sgd.step()""", observe="[sgd.param_groups[0]['lr'], "
         "sgd.param_groups[0]['params'][0] is net[0].weight]"),
    case("adam", "adam = torch.optim.Adam(dense.parameters(), lr=0.01)", """
        dense(torch.ones(1, 3)).sum().backward()
        adam.step()""", observe="[repr(adam.state_dict()), "
         "adam.param_groups[0]['params'][0] is dense.weight]", by_behaviour=True),
    case("schedule", "schedule = torch.optim.lr_scheduler.StepLR(adam, step_size=1)",
         "schedule.step()", observe="[schedule.get_last_lr(), schedule.optimizer is adam, "
         "schedule.last_epoch]", by_behaviour=True),
    case("dataset", "dataset = TensorDataset(torch.arange(8.0), torch.arange(8))",
         "dataset.tensors[0][0] = 100.0", observe="dataset[0][0].item()"),
    case("loader", "loader = DataLoader(dataset, batch_size=4)",
         "loader.generator = torch.Generator().manual_seed(1)",
         observe="[loader.generator is None, loader.dataset is dataset, "
                 "[b[0].tolist() for b in loader]]"),
    case("torch_rng", "torch_rng = torch.Generator().manual_seed(5)",
         "torch.rand(2, generator=torch_rng)", observe="torch_rng.get_state().sum().item()"),
    case("device", "device = torch.device('cpu')", "device = torch.device('meta')"),
    case("size", "size = torch.Size([2, 3])", "size = size + (4,)"),
    case("keras_dense", """
        keras_dense = keras.layers.Dense(2, kernel_initializer='ones')
        keras_dense.build((None, 3))""", "keras_dense.kernel.assign(keras.ops.zeros((3, 2)))",
         observe="keras.ops.convert_to_numpy(keras_dense(keras.ops.ones((1, 3)))).tolist()",
         by_behaviour=True),
    case("keras_adam", "keras_adam = keras.optimizers.Adam(learning_rate=0.01)",
         "keras_adam.learning_rate = 0.5",
         observe="float(keras.ops.convert_to_numpy(keras_adam.learning_rate))", by_behaviour=True),
    case("keras_model", """
        keras_model = keras.Sequential([keras.Input((2,)), keras.layers.Dense(1)])
        keras_model.compile(optimizer='sgd', loss='mse')""",
         "keras_model.layers[0].bias.assign(keras.ops.ones((1,)))",
         observe="keras.ops.convert_to_numpy(keras_model(keras.ops.ones((1, 2)))).tolist()",
         by_behaviour=True),
), env=(("KERAS_BACKEND", "torch"),))

MORE = Batch("graphs, algebra, boosting, images, widgets and more", """
    import numpy as np
    import networkx as nx
    import sympy
    import xgboost
    import lightgbm
    from PIL import Image
    import ipywidgets as widgets
    import xarray as xr
    import shapely
    import attrs
    import pydantic
    from dateutil import relativedelta, rrule, tz
    from sortedcontainers import SortedDict, SortedList, SortedSet
    import openpyxl
    from bs4 import BeautifulSoup
    import requests
    from IPython.display import HTML, Markdown
    from packaging.version import Version
    import io
    import tqdm
    X = np.random.default_rng(1).normal(size=(60, 3))
    y = (X[:, 0] > 0).astype(int)
    """, (
    case("graph", "graph = nx.Graph([(1, 2), (2, 3)])", "graph.add_edge(3, 4, weight=2)",
         observe="sorted(graph.edges(data=True))"),
    case("digraph", "digraph = nx.DiGraph(); digraph.add_node('a', kind='start')",
         "digraph.add_edge('a', 'b')", observe="[list(digraph.edges), dict(digraph.nodes)]"),
    case("multigraph", "multigraph = nx.MultiGraph([(0, 1), (0, 1)])",
         "multigraph.remove_edge(0, 1)", observe="multigraph.number_of_edges()"),
    case("x expr", "x = sympy.Symbol('x'); expr = x ** 2 + 1", "expr = sympy.diff(expr, x)",
         observe="[str(expr), expr.free_symbols == {x}]"),
    case("sym_matrix", "sym_matrix = sympy.Matrix([[1, 2], [3, 4]])", "sym_matrix[0, 0] = x",
         observe="str(sym_matrix)"),
    case("rational", "rational = sympy.Rational(1, 3)", "rational = rational * 6"),
    case("equation", "equation = sympy.Eq(x, 2)", "equation = sympy.Eq(x, 3)",
         observe="sympy.solve(equation, x)"),
    case("polynomial", "polynomial = sympy.Poly(x ** 2 - 1, x)",
         "polynomial = polynomial * 2", observe="polynomial.all_coeffs()"),
    case("undefined", "undefined = sympy.Function('f')", "undefined = sympy.Function('g')",
         observe="[str(undefined(x)), type(undefined(x)).__name__]"),
    case("applied", "applied = sympy.Function('h')(x) + 1", "applied = applied * 2",
         observe="str(applied)"),
    case("lambdified", "lambdified = sympy.lambdify(x, x ** 3)",
         "lambdified = sympy.lambdify(x, x ** 2)", observe="lambdified(3)"),
    case("booster_model", "booster_model = xgboost.XGBClassifier(n_estimators=3, max_depth=2)"
         ".fit(X, y)", "booster_model.fit(X[:30], y[:30])",
         observe="booster_model.predict_proba(X[:2]).round(5).tolist()"),
    case("booster", "booster = xgboost.train({'max_depth': 2}, xgboost.DMatrix(X, y), 2)",
         "booster.set_attr(note='trained')",
         observe="[booster.attr('note'), "
                 "booster.predict(xgboost.DMatrix(X[:2])).round(5).tolist()]"),
    case("dmatrix", "dmatrix = xgboost.DMatrix(X, y)", "dmatrix.set_label(1 - y)",
         observe="dmatrix.get_label().tolist()[:5]", refused="ctypes"),
    case("lgbm", "lgbm = lightgbm.LGBMRegressor(n_estimators=3, verbose=-1).fit(X, X[:, 0])",
         "lgbm.fit(X, X[:, 1])", observe="lgbm.predict(X[:2]).round(5).tolist()"),
    case("lgb_booster", "lgb_booster = lightgbm.train({'verbose': -1}, "
         "lightgbm.Dataset(X, X[:, 2]), 2)", "lgb_booster.best_iteration = 1",
         observe="lgb_booster.predict(X[:2]).round(5).tolist()"),
    case("picture", "picture = Image.new('RGB', (4, 4), 'red')",
         "picture.putpixel((1, 1), (0, 0, 255))", observe="picture.tobytes().hex()"),
    case("grey", "grey = Image.fromarray(np.arange(16, dtype=np.uint8).reshape(4, 4))",
         "grey.paste(255, (0, 0, 2, 2))", observe="[grey.mode, grey.tobytes().hex()]",
         by_behaviour=True),
    case("slider", "slider = widgets.IntSlider(value=3, min=0, max=10, description='n')",
         "slider.value = 8", observe="[slider.value, slider.description, slider.max]"),
    case("textbox", "textbox = widgets.Text(value='hi')", "textbox.value = 'bye'",
         observe="textbox.value"),
    case("dropdown", "dropdown = widgets.Dropdown(options=['a', 'b'], value='a')",
         "dropdown.value = 'b'", observe="[dropdown.value, list(dropdown.options)]"),
    case("button", "button = widgets.Button(description='Run')",
         "button.description = 'Stop'", observe="button.description"),
    case("box", "box = widgets.VBox([slider, textbox])", "box.children = (textbox,)",
         observe="[len(box.children), box.children[0] is textbox]"),
    case("labels", "labels = xr.DataArray(np.arange(6.0).reshape(2, 3), dims=('r', 'c'), "
         "coords={'r': ['p', 'q']})", "labels[0, 0] = -1.0",
         observe="[labels.values.tolist(), list(labels.coords['r'].values)]"),
    case("xr_dataset", "xr_dataset = xr.Dataset({'t': ('time', np.arange(3.0))}, "
         "attrs={'units': 'C'})", "xr_dataset.attrs['units'] = 'K'; xr_dataset['t'][1] = 9.0",
         observe="[xr_dataset.attrs, xr_dataset['t'].values.tolist()]"),
    case("point", "point = shapely.Point(1, 2)", "point = shapely.Point(3, 4)",
         observe="point.wkt"),
    case("polygon", "polygon = shapely.box(0, 0, 2, 2)", "polygon = polygon.buffer(1)",
         observe="round(polygon.area, 6)"),
    case("run Run", """
        @attrs.define
        class Run:
            name: str
            steps: list = attrs.field(factory=list)
        run = Run('first')""", "run.steps.append(1)",
         observe="[isinstance(run, Run), attrs.asdict(run)]"),
    case("settings Settings", """
        class Settings(pydantic.BaseModel):
            rate: float = 0.1
            tags: list[str] = []
        settings = Settings(tags=['a'])""", "settings.rate = 0.5",
         observe="[isinstance(settings, Settings), settings.model_dump()]",
         refused="cannot be saved in a form that loads back"),
    case("dynamic", "dynamic = pydantic.create_model('Dynamic', size=(int, 1))(size=3)",
         "dynamic.size = 4", observe="[type(dynamic).__name__, dynamic.model_dump()]",
         refused="not found as __main__.Dynamic"),
    case("made factory", """
        def factory():
            class Made:
                def __init__(self):
                    self.items = []
            return Made
        made = factory()()""", "made.items.append(1)",
         observe="[type(made).__qualname__, made.items]"),
    case("later", "later = relativedelta.relativedelta(months=1, day=31)",
         "later = later + relativedelta.relativedelta(days=1)"),
    case("recurrence", "recurrence = rrule.rrule(rrule.WEEKLY, count=3, "
         "dtstart=__import__('datetime').datetime(2024, 1, 1))",
         "recurrence = recurrence.replace(count=2)", observe="[str(d) for d in recurrence]"),
    case("tzfile", "tzfile = tz.gettz('Europe/Berlin')", "tzfile = tz.gettz('Asia/Kolkata')",
         observe="str(__import__('datetime').datetime(2024, 7, 1, tzinfo=tzfile).utcoffset())"),
    case("sorted_list", "sorted_list = SortedList([3, 1, 2])", "sorted_list.add(0)",
         observe="list(sorted_list)"),
    case("sorted_dict", "sorted_dict = SortedDict({'b': 1, 'a': 2})", "sorted_dict['c'] = 0",
         observe="list(sorted_dict.items())"),
    case("sorted_set", "sorted_set = SortedSet([5, 1])", "sorted_set.discard(5)",
         observe="list(sorted_set)"),
    case("workbook", "workbook = openpyxl.Workbook(); workbook.active['A1'] = 1",
         "workbook.active['A1'] = 2", observe="workbook.active['A1'].value"),
    case("soup", "soup = BeautifulSoup('<p id=\"a\">hi</p>', 'html.parser')",
         "soup.p.string = 'bye'", observe="str(soup)", by_behaviour=True),
    case("session", "session = requests.Session()", "session.headers['X-Token'] = 'abc'",
         observe="dict(session.headers)"),
    case("html", "html = HTML('<b>bold</b>')", "html.data = '<i>it</i>'",
         observe="html._repr_html_()"),
    case("markdown", "markdown = Markdown('# Title')", "markdown.data = '## Sub'",
         observe="markdown.data"),
    case("version", "version = Version('1.2.3')", "version = Version('2.0rc1')",
         observe="str(version)"),
    case("progress", "progress = tqdm.tqdm(total=10, file=io.StringIO())", "progress.update(2)",
         observe="progress.n", unloadable="maximum recursion depth"),
))

BATCHES: tuple[Batch, ...] = (STANDARD_LIBRARY, NUMERIC, SCIENCE, PLOTS, DEEP_LEARNING, MORE)
