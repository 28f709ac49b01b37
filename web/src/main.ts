import { createApp } from 'vue'
import { createPinia } from 'pinia'
import { vLoading } from 'element-plus'
// Styles of what is used from script (not seen by the template resolver): messages, boxes, loading.
import 'element-plus/theme-chalk/base.css'
import 'element-plus/theme-chalk/el-loading.css'
import 'element-plus/theme-chalk/el-message.css'
import 'element-plus/theme-chalk/el-message-box.css'
import 'element-plus/theme-chalk/el-notification.css'
import 'element-plus/theme-chalk/el-button.css'
import 'element-plus/theme-chalk/el-input.css'
import './styles/main.css'
import App from './App.vue'
import { router } from './router'
import { i18n } from './i18n'

const app = createApp(App)
app.use(createPinia())
app.use(router)
app.use(i18n)
app.directive('loading', vLoading)
app.mount('#app')
