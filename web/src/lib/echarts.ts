// Only the ECharts parts the console draws, so the chunk stays small.
import { use } from 'echarts/core'
import { CanvasRenderer } from 'echarts/renderers'
import { GaugeChart, BarChart, PieChart } from 'echarts/charts'
import { GridComponent, TooltipComponent, LegendComponent, TitleComponent } from 'echarts/components'

use([CanvasRenderer, GaugeChart, BarChart, PieChart, GridComponent, TooltipComponent, LegendComponent, TitleComponent])
export { default as VChart } from 'vue-echarts'
